import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { closeContexts, conversation, say, signInInUi, signUpInUi, startChat, waitOnline } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

test('deleting an account from the account page leaves "message deleted" in the other window, live', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  await say(alice, 'bob', 'a secret about the party');
  await say(alice, 'bob', 'and another one');
  const atBob = conversation(bob, 'alice');
  await expect(atBob.getByText('and another one')).toBeVisible();
  await atBob.getByLabel('Message to alice').fill('bob says this');
  await atBob.getByLabel('Message to alice').press('Enter');
  await expect(conversation(alice, 'bob').getByText('bob says this')).toBeVisible();

  // From the main window to the account page.
  await alice.getByRole('link', { name: 'Account' }).click();
  await expect(alice.getByRole('heading', { name: 'Your account: alice' })).toBeVisible();
  const form = alice.getByRole('region', { name: 'Delete your account' });
  // Without the tick the browser itself refuses; with a wrong password the server does.
  await form.getByLabel('Your password').fill('not-her-password');
  await form.getByLabel('I want my account and everything I wrote deleted').check();
  await form.getByRole('button', { name: 'Delete my account' }).click();
  await expect(alice.getByRole('alert')).toHaveText('That is not your password.');
  await expect(atBob.getByText('a secret about the party')).toBeVisible();

  const again = alice.getByRole('region', { name: 'Delete your account' });
  await again.getByLabel('Your password').fill('alice-password');
  await again.getByLabel('I want my account and everything I wrote deleted').check();
  await again.getByRole('button', { name: 'Delete my account' }).click();
  await expect(alice.getByText('Your account has been deleted, with everything you wrote.')).toBeVisible();

  // Bob's open window: her lines are tombstones, his own line stays.
  await expect(atBob.getByText('a secret about the party')).toBeHidden();
  await expect(atBob.getByText('and another one')).toBeHidden();
  await expect(atBob.locator('.line.tombstone')).toHaveCount(2);
  await expect(atBob.locator('.line.tombstone').first()).toHaveText('message deleted');
  await expect(atBob.getByText('bob says this')).toBeVisible();
  // And after a reload, from the history.
  await bob.reload();
  await waitOnline(bob);
  await expect(bob.getByRole('button', { name: /^alice/ })).toHaveCount(0);

  // Her name cannot be signed in with, nor taken.
  await signInInUi(alice, server.url, 'alice', 'alice-password');
  await expect(alice.getByRole('alert')).toHaveText('Wrong username or password.');
});

test('the account page lists the sessions, ends one, and changes the password', async ({ browser }) => {
  const laptop = await (await browser.newContext()).newPage();
  await signUpInUi(laptop, server.url, 'carol', 'carol-password');
  const phone = await (await browser.newContext()).newPage();
  await signInInUi(phone, server.url, 'carol', 'carol-password');
  await waitOnline(phone);

  await laptop.getByRole('link', { name: 'Account' }).click();
  const sessions = laptop.getByRole('region', { name: 'Where you are signed in' });
  await expect(sessions.getByRole('listitem')).toHaveCount(2);
  await expect(sessions.getByText('This browser')).toBeVisible();
  await expect(sessions.getByRole('listitem').first()).toContainText(/Chrom(e|ium) on Linux/);

  // Ending the phone's session: its window says the session ended.
  await sessions.getByRole('button', { name: /^End the session/ }).click();
  await expect(laptop.getByRole('status')).toHaveText('That session was ended.');
  await expect(laptop.getByRole('region', { name: 'Where you are signed in' }).getByRole('listitem')).toHaveCount(1);
  await expect(phone.getByRole('alertdialog', { name: 'Your session has ended' })).toBeVisible();

  // A new password: the old one no longer signs in.
  const change = laptop.getByRole('region', { name: 'Change your password' });
  await change.getByLabel('Current password').fill('carol-password');
  await change.getByLabel(/New password/).fill('carol-new-password');
  await change.getByRole('button', { name: 'Change password' }).click();
  await expect(laptop.getByRole('status')).toHaveText('Your password was changed, and you were signed out everywhere else.');
  const other = await (await browser.newContext()).newPage();
  await signInInUi(other, server.url, 'carol', 'carol-password');
  await expect(other.getByRole('alert')).toHaveText('Wrong username or password.');
  await signInInUi(other, server.url, 'carol', 'carol-new-password');
  await waitOnline(other);

  // The data download is offered as a file.
  await laptop.goto(server.url + '/account');
  const download = laptop.waitForEvent('download');
  await laptop.getByRole('link', { name: 'Download your data' }).click();
  expect((await download).suggestedFilename()).toBe('messenger-carol.json');
});
