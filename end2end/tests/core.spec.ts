import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { closeContexts, conversation, linkState, say, signInInUi, signUpInUi, startChat, waitOnline } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

test('two users chat live both ways and the history is there after a reload', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');

  await startChat(alice, 'bob');
  await say(alice, 'bob', 'Hi Bob! Are you there?');
  // Bob's window opens by itself when the message arrives.
  await expect(conversation(bob, 'alice').getByText('Hi Bob! Are you there?')).toBeVisible();
  await say(bob, 'alice', 'Hey Alice, yes I am');
  await expect(conversation(alice, 'bob').getByText('Hey Alice, yes I am')).toBeVisible();

  // Closed, then reloaded: old messages do not pop windows open (an open window would
  // have been kept); the conversation is in the list.
  await conversation(alice, 'bob').getByRole('button', { name: 'Close the conversation with bob' }).click();
  await alice.reload();
  await waitOnline(alice);
  await expect(conversation(alice, 'bob')).toHaveCount(0);
  await alice.getByRole('button', { name: /^bob/ }).click();
  const win = conversation(alice, 'bob');
  await expect(win.getByText('Hi Bob! Are you there?')).toBeVisible();
  await expect(win.getByText('Hey Alice, yes I am')).toBeVisible();
  await expect(win.getByText('This is the start of the conversation.')).toBeVisible();
});

test('a restarted server loses and duplicates nothing, and both sides carry on', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  await say(alice, 'bob', 'before the restart');
  await expect(conversation(bob, 'alice').getByText('before the restart')).toBeVisible();

  // A crash: the server dies without a goodbye. Alice keeps typing while it is down.
  await server.stop('SIGKILL');
  await expect(linkState(alice)).toHaveText(/reconnecting/);
  await say(alice, 'bob', 'sent while the server was down');
  await server.boot();

  await waitOnline(alice);
  await waitOnline(bob);
  const bobWin = conversation(bob, 'alice');
  await expect(bobWin.getByText('sent while the server was down')).toBeVisible();
  await say(bob, 'alice', 'after the restart');
  await expect(conversation(alice, 'bob').getByText('after the restart')).toBeVisible();

  // Exactly once each, in order, on both sides.
  for (const page of [alice, bob]) {
    const lines = page.locator('.history .line:not(.pending) .body');
    await expect(lines).toHaveText(['before the restart', 'sent while the server was down', 'after the restart']);
  }
  await expect(alice.locator('.line.pending')).toHaveCount(0);
});

test('a guest gets a clearly marked temporary account', async ({ page }) => {
  await page.goto(server.url);
  await page.getByRole('button', { name: 'Try as guest' }).click();
  await expect(page).toHaveURL(`${server.url}/app`);
  await waitOnline(page);
  await expect(page.locator('.my-name')).toHaveText(/^Guest [0-9A-F]{4}\s*guest$/);
  // Others need the guest's username to start a conversation with them.
  await expect(page.getByText(/Others reach you as guest~[0-9a-f]{10}/)).toBeVisible();
  // The stylesheet is served and applied (windows have their rounded glass frame).
  await expect(page.locator('.main-window')).toHaveCSS('border-radius', '8px');
});

test('a wrong password gets a clear error and keeps the username', async ({ page }) => {
  await server.signUp('carol', 'carol-password');
  await signInInUi(page, server.url, 'carol', 'not-her-password');
  await expect(page.getByRole('alert')).toHaveText('Wrong username or password.');
  await expect(page.getByLabel('Username', { exact: true })).toHaveValue('carol');
  await page.getByLabel('Password', { exact: true }).fill('carol-password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await waitOnline(page);
});

test('signing out in one tab ends the session in the other, which keeps its draft', async ({ browser }) => {
  await server.signUp('dave', 'dave-password');
  await server.signUp('erin', 'erin-password');
  const context = await browser.newContext();
  const first = await context.newPage();
  await signInInUi(first, server.url, 'dave', 'dave-password');
  await waitOnline(first);
  await startChat(first, 'erin');
  const draft = conversation(first, 'erin').getByLabel('Message to erin');
  await draft.fill('a draft that must survive');

  const second = await context.newPage();
  await second.goto(`${server.url}/app`);
  await waitOnline(second);
  await second.getByRole('button', { name: 'Sign out' }).click();
  await expect(second).toHaveURL(`${server.url}/`);

  const dialog = first.getByRole('alertdialog', { name: 'Your session has ended' });
  await expect(dialog).toBeVisible();
  await dialog.getByLabel('Password for dave').fill('dave-password');
  await dialog.getByRole('button', { name: 'Sign in again' }).click();
  await expect(dialog).toBeHidden();
  await waitOnline(first);
  await expect(draft).toHaveValue('a draft that must survive');
  await draft.press('Enter');
  await expect(conversation(first, 'erin').locator('.line:not(.pending) .body')).toHaveText(['a draft that must survive']);
});

test('with JavaScript off, the sign-in window signs up, refuses with its message, signs in and out', async ({ browser }) => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(server.url);
  await page.getByText('New to Messenger? Create an account').click();
  await page.getByLabel('New username').fill('nojs');
  await page.getByLabel('Choose a password').fill('no-js-password');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(`${server.url}/app`);
  // The main window is served as HTML (its island does not run here); its sign-out is a
  // plain form too.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(`${server.url}/`);
  // A refusal comes back on the window it came from, with its message and the name kept.
  await page.getByText('New to Messenger? Create an account').click();
  await page.getByLabel('New username').fill('nojs');
  await page.getByLabel('Choose a password').fill('another-password');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(`${server.url}/?mode=signup&username=nojs&error=username_taken`);
  await expect(page.getByRole('alert')).toHaveText('That username is taken; choose another.');
  await expect(page.getByLabel('New username')).toHaveValue('nojs');
  await page.getByLabel('Username', { exact: true }).fill('nojs');
  await page.getByLabel('Password', { exact: true }).fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong username or password.');
  await expect(page.getByLabel('Username', { exact: true })).toHaveValue('nojs');
  await page.getByLabel('Password', { exact: true }).fill('no-js-password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page).toHaveURL(`${server.url}/app`);
  await expect(page.getByText('Others reach you as')).toHaveCount(0);
  await expect(page.getByRole('button', { name: /Your display name: nojs/ })).toBeVisible();
});
