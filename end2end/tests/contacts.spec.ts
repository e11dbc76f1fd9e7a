import { Page } from '@playwright/test';
import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { closeContexts, contactEntry, myStatus, setStatus, signInInUi, signUpInUi, waitOnline, addContactInUi } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

/** A user's entry in the contact list of `page`. */
const entry = contactEntry;

function section(page: Page, title: RegExp | string) {
  return page.getByRole('button', { name: title });
}

function toast(page: Page, text: string) {
  return page.getByRole('status', { name: 'Notifications' }).getByText(text);
}


test('a contact request is accepted, then status, personal message and name changes show live', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');

  await addContactInUi(alice, 'bob');
  await expect(section(alice, 'Waiting for an answer (1)')).toBeVisible();
  await expect(entry(alice, 'bob')).toContainText('Cancel request');

  // Bob hears of it at once, with a toast, and answers from the Requests section.
  await expect(toast(bob, 'alice wants to add you as a contact.')).toBeVisible();
  await expect(section(bob, 'Requests (1)')).toBeVisible();
  await entry(bob, 'alice').getByRole('button', { name: 'Accept' }).click();

  await expect(section(alice, 'Online (1)')).toBeVisible();
  await expect(entry(alice, 'bob')).toHaveAttribute('data-status', 'online');
  await expect(section(bob, 'Online (1)')).toBeVisible();
  await expect(entry(bob, 'alice')).toHaveAttribute('data-status', 'online');

  await setStatus(bob, 'Busy');
  await expect(entry(alice, 'bob')).toHaveAttribute('data-status', 'busy');
  await expect(entry(alice, 'bob')).toContainText('(Busy)');

  const pm = bob.getByLabel('Your personal message');
  await pm.fill('At the dentist until 3');
  await pm.press('Enter');
  await expect(entry(alice, 'bob')).toContainText('At the dentist until 3');

  await bob.getByRole('button', { name: /Your display name: bob/ }).click();
  const name = bob.getByLabel('Your display name');
  await expect(name).toBeFocused();
  await name.fill('Bobby B.');
  await name.press('Enter');
  await expect(entry(alice, 'bob')).toContainText('Bobby B.');
  // Kept across a reload.
  await bob.reload();
  await waitOnline(bob);
  await expect(bob.getByRole('button', { name: /Your display name: Bobby B\./ })).toBeVisible();
  await expect(bob.getByLabel('Your personal message')).toHaveValue('At the dentist until 3');
  await expect(myStatus(bob)).toHaveAccessibleName('Your status: Busy');

  // Appear Offline: alice sees bob offline, with no personal message; back online shows
  // the sign-in toast. Bob's reload may have shown one too (when his old socket closed
  // before the new one said hello), and it may reach alice late: bob's presence changes
  // reach her in order, so once she sees him offline any such toast is there, and the
  // test waits for it to go (6 s) before bob comes back. (Waiting before Appear Offline
  // passed at once when that toast had not arrived yet, and two toasts showed.)
  await setStatus(bob, 'Appear Offline');
  await expect(section(alice, 'Offline (1)')).toBeVisible();
  await expect(entry(alice, 'bob')).toHaveAttribute('data-status', 'offline');
  await expect(entry(alice, 'bob')).not.toContainText('At the dentist');
  await expect(toast(alice, 'Bobby B. has just signed in.')).toHaveCount(0);
  await setStatus(bob, 'Online');
  await expect(toast(alice, 'Bobby B. has just signed in.')).toBeVisible();
  await expect(entry(alice, 'bob')).toHaveAttribute('data-status', 'online');
});

test('signing in as Appear Offline never shows online; signing in shows the toast; groups sort contacts', async ({ browser }) => {
  await server.signUp('carol', 'carol-password');
  await server.signUp('dave', 'dave-password');
  const carol = await (await browser.newContext()).newPage();
  const daveContext = await browser.newContext();
  let dave = await daveContext.newPage();
  await signInInUi(carol, server.url, 'carol', 'carol-password');
  await waitOnline(carol);
  await signInInUi(dave, server.url, 'dave', 'dave-password');
  await waitOnline(dave);
  await addContactInUi(carol, 'dave');
  await entry(dave, 'carol').getByRole('button', { name: 'Accept' }).click();
  await expect(entry(carol, 'dave')).toHaveAttribute('data-status', 'online');

  // Dave signs out; then signs in again choosing Appear Offline on the sign-in window.
  await dave.getByRole('button', { name: 'Sign out' }).click();
  await expect(entry(carol, 'dave')).toHaveAttribute('data-status', 'offline');
  await dave.getByLabel('Username', { exact: true }).fill('dave');
  await dave.getByLabel('Password', { exact: true }).fill('dave-password');
  await dave.getByText('Sign in as:').click();
  await dave.getByRole('radio', { name: 'Appear Offline' }).check();
  // The summary shows the choice (through CSS alone: the sign-in window has no script).
  await expect(dave.locator('.status-picker .chosen:visible')).toHaveText('Appear Offline');
  await dave.getByRole('button', { name: 'Sign in', exact: true }).click();
  await waitOnline(dave);
  await expect(myStatus(dave)).toHaveAccessibleName('Your status: Appear Offline');
  // A fresh look at carol's list (a reload asks the server again) still shows dave offline.
  await carol.reload();
  await waitOnline(carol);
  await expect(entry(carol, 'dave')).toHaveAttribute('data-status', 'offline');

  // A new tab of dave's does not reveal him either.
  const daveTab = await daveContext.newPage();
  await daveTab.goto(`${server.url}/app`);
  await waitOnline(daveTab);
  await expect(entry(carol, 'dave')).toHaveAttribute('data-status', 'offline');
  await daveTab.close();

  // Signing in again as Busy: carol gets the toast.
  await dave.getByRole('button', { name: 'Sign out' }).click();
  dave = await daveContext.newPage();
  await signInInUi(dave, server.url, 'dave', 'dave-password');
  await waitOnline(dave);
  await setStatus(dave, 'Busy');
  await expect(toast(carol, 'dave has just signed in.')).toBeVisible();
  await expect(entry(carol, 'dave')).toContainText('(Busy)');

  // Groups: create one, move dave into it, fold it away and back.
  await carol.getByRole('toolbar').getByRole('button', { name: 'Create a group' }).click();
  await carol.getByLabel('New group name').fill('Climbing');
  await carol.getByRole('button', { name: 'Create', exact: true }).click();
  await expect(section(carol, 'Climbing (0/0)')).toBeVisible();
  await entry(carol, 'dave').getByRole('button', { name: 'More actions for dave' }).click();
  await entry(carol, 'dave').getByLabel('Group').selectOption({ label: 'Climbing' });
  await expect(section(carol, 'Climbing (1/1)')).toBeVisible();
  await section(carol, 'Climbing (1/1)').click();
  await expect(entry(carol, 'dave')).toBeHidden();
  await section(carol, 'Climbing (1/1)').click();
  await expect(entry(carol, 'dave')).toBeVisible();
});
