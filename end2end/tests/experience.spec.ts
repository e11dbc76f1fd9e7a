import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { befriendInUi, closeContexts, contactEntry, conversation, linkState, say, searchBox, signUpInUi, startChat, waitOnline } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

test('conversation windows follow the talk, and keep the place of a reader who scrolled up', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  await say(alice, 'bob', 'message 1');
  const atBob = conversation(bob, 'alice');
  const atAlice = conversation(alice, 'bob');
  await expect(atBob.getByText('message 1', { exact: true })).toBeVisible();
  for (let i = 2; i <= 30; i++) {
    await say(alice, 'bob', `message ${i}`);
  }
  // The last line is in view on both sides, however tall the history has grown.
  for (const window of [atAlice, atBob]) {
    await expect(window.getByText('message 30', { exact: true })).toBeInViewport();
    await expect(window.getByRole('button', { name: /New messages/ })).toHaveCount(0);
  }
  // Bob scrolls up to read: his place is kept, and a marker says something came.
  const history = atBob.getByRole('log', { name: 'Messages' });
  await history.evaluate((el) => el.scrollTo(0, 0));
  await expect(atBob.getByText('message 30', { exact: true })).not.toBeInViewport();
  await say(alice, 'bob', 'message 31');
  const marker = atBob.getByRole('button', { name: /New messages/ });
  await expect(marker).toBeVisible();
  await expect(atBob.getByText('message 31', { exact: true })).not.toBeInViewport();
  await marker.click();
  await expect(atBob.getByText('message 31', { exact: true })).toBeInViewport();
  await expect(marker).toHaveCount(0);
  // His own send always goes to the bottom, even from further up.
  await history.evaluate((el) => el.scrollTo(0, 0));
  await say(bob, 'alice', 'my answer');
  await expect(atBob.getByText('my answer', { exact: true })).toBeInViewport();
  // And a nudge reaches the reader at the bottom too.
  await atAlice.getByRole('button', { name: 'Nudge' }).click();
  await expect(atBob.getByText('alice sent a nudge.')).toBeInViewport();
});

test('the session-ended dialog starts clean, takes focus, keeps Tab inside and is announced', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  // An earlier notice in the main window.
  await alice.getByRole('searchbox', { name: /Search contacts/ }).fill('nobody_here');
  await alice.getByRole('button', { name: 'Chat with nobody_here', exact: true }).click();
  await expect(alice.getByText('There is no user called "nobody_here".')).toBeVisible();
  // The session ends elsewhere (signed out with the same cookie).
  const res = await alice.request.post(`${server.url}/api/signout`, { headers: { origin: server.url } });
  expect(res.status()).toBeLessThan(400);
  const dialog = alice.getByRole('alertdialog', { name: 'Your session has ended' });
  await expect(dialog).toBeVisible();
  await expect(dialog).toHaveAccessibleDescription('Sign in again to carry on. Nothing you typed is lost.');
  await expect(alice.getByText('There is no user called "nobody_here".')).toHaveCount(0);
  await expect(dialog.getByRole('alert')).toHaveCount(0);
  const password = dialog.getByLabel('Password for alice');
  await expect(password).toBeFocused();
  // Tab and Shift+Tab stay within the dialog.
  for (let i = 0; i < 4; i++) {
    await alice.keyboard.press('Tab');
    expect(await dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
  }
  await password.focus();
  await alice.keyboard.press('Shift+Tab');
  expect(await dialog.evaluate((d) => d.contains(document.activeElement))).toBe(true);
  await expect(password).not.toBeFocused();
  // A wrong password shows its own error, and the right one carries on.
  await password.fill('wrong password');
  await password.press('Enter');
  await expect(dialog.getByRole('alert')).toBeVisible();
  await password.fill('alice-password');
  await password.press('Enter');
  await expect(dialog).toHaveCount(0);
  await expect(linkState(alice)).toHaveText('Connected');
});

test('open windows, where they were dragged and unsent drafts survive a reload', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  const window = conversation(alice, 'bob');
  await window.getByLabel('Message to bob').fill('half-written thought');
  // Dragged by its title bar.
  const before = (await window.boundingBox())!;
  const bar = window.locator('.titlebar');
  const grip = (await bar.boundingBox())!;
  await alice.mouse.move(grip.x + 60, grip.y + grip.height / 2);
  await alice.mouse.down();
  await alice.mouse.move(grip.x + 60 + 120, grip.y + grip.height / 2 + 40, { steps: 5 });
  await alice.mouse.up();
  const moved = (await window.boundingBox())!;
  expect(Math.round(moved.x - before.x)).toBe(120);
  expect(Math.round(moved.y - before.y)).toBe(40);

  await alice.reload();
  await waitOnline(alice);
  await expect(window).toBeVisible();
  await expect(window.getByLabel('Message to bob')).toHaveValue('half-written thought');
  const after = (await window.boundingBox())!;
  expect(Math.round(after.x)).toBe(Math.round(moved.x));
  expect(Math.round(after.y)).toBe(Math.round(moved.y));
  // Another user in the same tab's storage would not see them: it is kept per user.
  const kept = await alice.evaluate(() => Object.keys(sessionStorage));
  expect(kept.some((k) => k.startsWith('messenger.windows.'))).toBe(true);
});

test('one search box filters the list and offers to chat with or add a username; adding lives behind the icon bar', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  const carol = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await signUpInUi(carol, server.url, 'carol', 'carol-password');
  await befriendInUi(alice, 'alice', bob, 'bob');
  // No form before the list: one search box, and an icon bar.
  await expect(alice.getByLabel('Add a contact')).toHaveCount(0);
  const search = searchBox(alice);
  await expect(search).toBeVisible();
  await expect(alice.getByRole('toolbar').getByRole('button')).toHaveText(['Add a contact', 'Add an AI contact', 'Create a group']);

  // Typing filters: bob's entry and the Lobby room show only while they match.
  await search.fill('bo');
  await expect(contactEntry(alice, 'bob')).toBeVisible();
  await expect(alice.getByRole('button', { name: /^Lobby/ })).toHaveCount(0);
  await search.fill('lob');
  await expect(contactEntry(alice, 'bob')).toHaveCount(0);
  await expect(alice.getByRole('button', { name: /^Lobby/ })).toBeVisible();
  // A username in the list: chat only. One not in it: chat, or add.
  await search.fill('bob');
  await expect(alice.getByRole('button', { name: 'Chat with bob' })).toBeVisible();
  await expect(alice.getByRole('button', { name: 'Add bob as a contact' })).toHaveCount(0);
  await search.fill('carol');
  await alice.getByRole('button', { name: 'Add carol as a contact' }).click();
  await expect(search).toHaveValue('');
  await expect(contactEntry(carol, 'alice').getByRole('button', { name: 'Accept' })).toBeVisible();
  await search.fill('carol');
  await alice.getByRole('button', { name: 'Chat with carol' }).click();
  // The window opens with the cursor in its box.
  await expect(conversation(alice, 'carol').getByLabel('Message to carol')).toBeFocused();
  // Escape closes the window the focus is in.
  await alice.keyboard.press('Escape');
  await expect(conversation(alice, 'carol')).toHaveCount(0);
  // The icon bar's panels close with Escape too.
  await alice.getByRole('toolbar').getByRole('button', { name: 'Create a group' }).click();
  await expect(alice.getByLabel('New group name')).toBeFocused();
  await alice.keyboard.press('Escape');
  await expect(alice.getByLabel('New group name')).toHaveCount(0);
});

test('the emoticon picker works from the keyboard', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  const window = conversation(alice, 'bob');
  await window.getByRole('button', { name: 'Emoticons' }).focus();
  await alice.keyboard.press('Enter');
  const panel = window.getByRole('group', { name: 'Choose an emoticon' });
  await expect(panel.getByRole('button').first()).toBeFocused();
  await alice.keyboard.press('ArrowRight');
  await expect(panel.getByRole('button').nth(1)).toBeFocused();
  await alice.keyboard.press('Enter');
  await expect(window.getByLabel('Message to bob')).toBeFocused();
  await expect(window.getByLabel('Message to bob')).not.toHaveValue('');
  // Escape closes the panel, not the window, and goes back to its button.
  await window.getByRole('button', { name: 'Emoticons' }).click();
  await alice.keyboard.press('Escape');
  await expect(panel).toBeHidden();
  await expect(window).toBeVisible();
  await expect(window.getByRole('button', { name: 'Emoticons' })).toBeFocused();
});
