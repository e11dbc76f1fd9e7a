import { Page } from '@playwright/test';
import { test, expect } from './fixtures';
import AxeBuilder from '@axe-core/playwright';
import { Messenger } from '../server';
import { befriendInUi, closeContexts, conversation, myStatus, say, searchBox, signUpInUi, startChat, addContactInUi } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

/** Serious and critical axe violations on the page as it is now, described for the report. */
async function seriousViolations(page: Page) {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}

test('the sign-in window, main window and a conversation window have no serious accessibility problems', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(server.url);
  expect(await seriousViolations(page)).toEqual([]);
  await page.getByText('New to Messenger? Create an account').click();
  expect(await seriousViolations(page)).toEqual([]);

  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await signUpInUi(page, server.url, 'alice', 'alice-password');
  await addContactInUi(page, 'bob');
  await bob.locator('.contact-row[data-user="alice"]').getByRole('button', { name: 'Accept' }).click();
  await expect(page.locator('.contact-row[data-user="bob"]')).toHaveAttribute('data-status', 'online');
  await page.locator('.contact-row[data-user="bob"]').getByRole('button', { name: 'More actions for bob' }).click();
  expect(await seriousViolations(page)).toEqual([]);

  await startChat(page, 'bob');
  await conversation(page, 'bob').getByRole('button', { name: 'Emoticons' }).click();
  expect(await seriousViolations(page)).toEqual([]);
});

/** Every axe violation, whatever its impact. */
async function violations(page: Page) {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
  );
}

test('the main window and a conversation window with a nudge in it have no accessibility violations at all', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await befriendInUi(alice, 'alice', bob, 'bob');
  await startChat(alice, 'bob');
  await say(alice, 'bob', 'Hello :) (Y)');
  await conversation(bob, 'alice').getByRole('button', { name: 'Nudge' }).click();
  const window = conversation(alice, 'bob');
  await expect(window.getByText('bob sent a nudge.')).toBeVisible();
  await expect(window).not.toHaveClass(/shaking/);
  expect(await violations(alice)).toEqual([]);
  // With the icon bar's panel, the status menu and the search's offers open.
  await alice.getByRole('toolbar').getByRole('button', { name: 'Add an AI contact' }).click();
  await expect(alice.getByRole('button', { name: 'Add Tamagotchi Tina' })).toBeVisible();
  expect(await violations(alice)).toEqual([]);
  await alice.keyboard.press('Escape');
  await myStatus(alice).click();
  expect(await violations(alice)).toEqual([]);
  await alice.keyboard.press('Escape');
  await searchBox(alice).fill('carol');
  expect(await violations(alice)).toEqual([]);
});

test('the account page has no accessibility violations at all, nor after a refusal', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await signUpInUi(page, server.url, 'dora', 'dora-password');
  await page.getByRole('link', { name: 'Account' }).click();
  await expect(page.getByRole('heading', { name: 'Your account: dora' })).toBeVisible();
  expect(await violations(page)).toEqual([]);
  const change = page.getByRole('region', { name: 'Change your password' });
  await change.getByLabel('Current password').fill('not-the-password');
  await change.getByLabel(/New password/).fill('a-new-password');
  await change.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert')).toHaveText('That is not your password.');
  expect(await violations(page)).toEqual([]);
});

test('the admin console, with an answer and its chart, has no accessibility violations at all', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await signUpInUi(page, server.url, 'vera', 'vera-password');
  server.admin('admin', 'grant', 'vera');
  await page.goto(`${server.url}/admin`);
  await page.getByRole('link', { name: 'Logins per hour' }).click();
  await expect(page.getByRole('status')).toContainText(/row/);
  expect(await violations(page)).toEqual([]);
  await page.getByRole('link', { name: 'Users' }).click();
  await expect(page.getByRole('row', { name: /vera/ })).toBeVisible();
  expect(await violations(page)).toEqual([]);
  await page.getByRole('link', { name: 'Rooms' }).click();
  await expect(page.getByRole('row', { name: /Lobby/ })).toBeVisible();
  expect(await violations(page)).toEqual([]);
  await page.getByRole('link', { name: 'AI contacts' }).click();
  await expect(page.getByText('Circuit breaker')).toBeVisible();
  expect(await violations(page)).toEqual([]);
  await page.getByRole('link', { name: 'Audit log' }).click();
  await expect(page.getByText('The chain holds')).toBeVisible();
  expect(await violations(page)).toEqual([]);
});
