import { Page } from '@playwright/test';
import { test, expect } from './fixtures';
import AxeBuilder from '@axe-core/playwright';
import { Messenger } from '../server';
import { closeContexts, conversation, signUpInUi, startChat, addContactInUi } from './helpers';

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
