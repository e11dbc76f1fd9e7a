import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { befriendInUi, closeContexts, contactEntry, conversation, linkState, myStatus, say, searchBox, signUpInUi, startChat, waitOnline } from './helpers';

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
  // An Escape that comes while the focus is still on the button (before it has moved into
  // the panel just opened) closes the panel too, never the window.
  await window.getByRole('button', { name: 'Emoticons' }).click();
  await expect(panel).toBeVisible();
  await window.getByRole('button', { name: 'Emoticons' }).focus();
  await alice.keyboard.press('Escape');
  await expect(panel).toBeHidden();
  await expect(window).toBeVisible();
  await expect(window.getByRole('button', { name: 'Emoticons' })).toBeFocused();
});

test('conversation windows group lines under one "says:" with a time, show large pictures, and keep their size', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await befriendInUi(alice, 'alice', bob, 'bob');
  await startChat(alice, 'bob');
  for (const text of ['one', 'two', 'three']) await say(alice, 'bob', text);
  const atBob = conversation(bob, 'alice');
  await expect(atBob.getByText('three', { exact: true })).toBeVisible();
  await say(bob, 'alice', 'four');
  await expect(atBob.getByText('four', { exact: true })).toBeVisible();
  // Three lines from alice under one "alice says:", then bob's own group.
  await expect(atBob.locator('.line .who')).toHaveText([/^alice says:\s*\d\d:\d\d$/, /^bob says:\s*\d\d:\d\d$/]);
  await expect(atBob.locator('.line').filter({ hasText: 'two' })).toHaveAttribute('title', /\d/);
  // The pictures, large, at the side: the contact's and one's own.
  const pictures = atBob.locator('.conv-side img');
  await expect(pictures).toHaveCount(2);
  await expect(pictures.first()).toHaveAttribute('alt', 'Display picture of alice');
  expect((await pictures.first().boundingBox())!.width).toBeGreaterThanOrEqual(90);
  // Resized from its corner, and still that size after a reload.
  const before = (await atBob.boundingBox())!;
  await bob.mouse.move(before.x + before.width - 3, before.y + before.height - 3);
  await bob.mouse.down();
  await bob.mouse.move(before.x + before.width + 80, before.y + before.height + 40, { steps: 5 });
  await bob.mouse.up();
  const resized = (await atBob.boundingBox())!;
  expect(resized.width).toBeGreaterThan(before.width + 40);
  await bob.reload();
  await waitOnline(bob);
  const after = (await conversation(bob, 'alice').boundingBox())!;
  expect(Math.round(after.width)).toBe(Math.round(resized.width));
  expect(Math.round(after.height)).toBe(Math.round(resized.height));
});

test('a message in the background toasts with a picture, counts in the title and notifies; an offline contact is said to get it later', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bobContext = await browser.newContext();
  // The system's notifications, allowed and recorded.
  await bobContext.addInitScript(() => {
    const shown: { title: string; body?: string; icon?: string }[] = [];
    (window as any).__shown = shown;
    (window as any).Notification = class {
      static permission = 'granted';
      static requestPermission() {
        return Promise.resolve('granted');
      }
      constructor(title: string, options?: { body?: string; icon?: string }) {
        shown.push({ title, body: options?.body, icon: options?.icon });
      }
    };
  });
  const bob = await bobContext.newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await befriendInUi(alice, 'alice', bob, 'bob');
  // The request's answer toasts at alice's, with bob's picture.
  const accepted = alice.locator('.toast').filter({ hasText: 'bob accepted your request and is now in your list.' });
  await expect(accepted).toBeVisible();
  await expect(accepted.locator('img.picture')).toBeVisible();
  await expect(bob).toHaveTitle('Messenger');

  // Bob's tab goes to the background.
  await bob.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await startChat(alice, 'bob');
  await say(alice, 'bob', 'are you there?');
  const toast = bob.locator('.toast').filter({ hasText: 'alice says: are you there?' });
  await expect(toast).toBeVisible();
  // Alice has no picture of her own: the default one shows.
  await expect(toast.locator('img.picture')).toHaveAttribute('src', /picture/);
  await expect(bob).toHaveTitle('(1) Messenger');
  const shown = await bob.evaluate(() => (window as any).__shown);
  expect(shown).toEqual([{ title: 'alice says:', body: 'are you there?', icon: expect.stringMatching(/picture/) }]);
  // Back in front: the title is plain again.
  await bob.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await expect(bob).toHaveTitle('Messenger');

  // Bob goes away: alice is told her messages wait for him.
  await bobContext.close();
  await expect(conversation(alice, 'bob').getByText('bob is offline: your messages will be delivered when they sign in.')).toBeVisible();
});

test('the personal message shows whole, and a guest sees their username whole with a copy button', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  const text = 'Listening to: Daft Punk - Harder, Better, Faster, Stronger (Alive 2007)';
  const box = alice.getByLabel('Your personal message');
  await box.fill(text);
  await box.press('Enter');
  await expect(box).toHaveAttribute('title', text);
  const fits = await box.evaluate((el) => el.scrollWidth <= el.clientWidth && el.scrollHeight <= el.clientHeight + 1);
  expect(fits).toBe(true);

  const context = await browser.newContext();
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  const guest = await context.newPage();
  await guest.goto(server.url);
  await guest.getByRole('button', { name: 'Try as guest' }).click();
  await waitOnline(guest);
  const handle = guest.locator('.my-username .handle');
  const name = (await handle.textContent())!;
  expect(name).toMatch(/^guest~[0-9a-f]{10}$/);
  // On one line, whole.
  const whole = await handle.evaluate((el) => el.scrollWidth <= el.clientWidth + 1 && el.getClientRects().length === 1);
  expect(whole).toBe(true);
  await guest.getByRole('button', { name: 'Copy your username' }).click();
  await expect(guest.getByRole('button', { name: 'Username copied' })).toBeVisible();
  expect(await guest.evaluate(() => navigator.clipboard.readText())).toBe(name);
});

test("the main window's title bar shows every one of its controls whole, the alerts offer included", async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  const bar = alice.locator('header.titlebar').first();
  // Notifications not yet answered: the "Alerts" offer is there too.
  await expect(bar.getByRole('button', { name: 'Alerts' })).toBeVisible();
  const box = (await bar.boundingBox())!;
  for (const name of ['Alerts', 'Sounds', 'Account', 'Sign out']) {
    const control = name === 'Account' ? bar.getByRole('link', { name }) : bar.getByRole('button', { name });
    const b = (await control.boundingBox())!;
    expect(b.x, `${name} starts inside the title bar`).toBeGreaterThanOrEqual(box.x);
    expect(b.x + b.width, `${name} ends inside the title bar`).toBeLessThanOrEqual(box.x + box.width + 0.5);
    expect(b.y + b.height, `${name} is inside the title bar`).toBeLessThanOrEqual(box.y + box.height + 0.5);
  }
  // And nothing in it is cut off by the window's edge.
  const clipped = await bar.evaluate((el) => el.scrollWidth > el.clientWidth + 1);
  expect(clipped).toBe(false);
});

test('names and personal messages draw emoticons, a renamed contact renames their windows, and the status menu works from the keyboard', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await befriendInUi(alice, 'alice', bob, 'bob');
  await startChat(alice, 'bob');
  // Bob renames himself and writes a personal message with emoticons, old and new codes.
  await bob.getByRole('button', { name: /Your display name: bob/ }).click();
  await bob.getByLabel('Your display name').fill('Bobby :)');
  await bob.getByLabel('Your display name').press('Enter');
  const pm = bob.getByLabel('Your personal message');
  await pm.fill('(A) or (6)? :| (K)');
  await pm.press('Enter');
  const entry = contactEntry(alice, 'bob');
  await expect(entry.getByRole('img', { name: 'smile' })).toBeVisible();
  for (const name of ['angel', 'devil', 'disappointed', 'kiss']) {
    await expect(entry.locator('.personal-message').getByRole('img', { name })).toBeVisible();
  }
  // The open window follows the new name: its title, its "To:" line, the list.
  await expect(conversation(alice, 'Bobby :)')).toBeVisible();
  await expect(conversation(alice, 'Bobby :)').locator('.conv-to strong').getByRole('img', { name: 'smile' })).toBeVisible();
  await expect(alice.locator('.contact-list').getByRole('button', { name: /^Bobby :\)/ }).first()).toBeVisible();

  // The status menu: icons, arrows, Enter, Escape.
  const button = myStatus(alice);
  await button.focus();
  await alice.keyboard.press('Enter');
  const menu = alice.getByRole('menu', { name: 'Your status' });
  await expect(menu.getByRole('menuitemradio', { name: 'Online' })).toBeFocused();
  await expect(menu.locator('.status-dot')).toHaveCount(7);
  await alice.keyboard.press('ArrowDown');
  await expect(menu.getByRole('menuitemradio', { name: 'Busy' })).toBeFocused();
  await alice.keyboard.press('Enter');
  await expect(button).toHaveAccessibleName('Your status: Busy');
  await expect(menu).toBeHidden();
  await expect(entry).toHaveCount(1);
  await expect(contactEntry(bob, 'alice')).toContainText('(Busy)');
  await button.click();
  await alice.keyboard.press('Escape');
  await expect(menu).toBeHidden();
  await expect(button).toBeFocused();
});

test('a room shows who is in it and offers no nudge', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await bob.getByRole('button', { name: /^Lobby/ }).click();
  await alice.getByRole('button', { name: /^Lobby/ }).click();
  const room = alice.getByRole('region', { name: 'Conversation with Lobby' });
  await expect(room).toBeVisible();
  const members = room.getByRole('list', { name: 'Members of this room' });
  await expect(room.getByText('In this room (2)')).toBeVisible();
  await expect(members.getByRole('listitem')).toHaveText(['alice', 'bob']);
  await expect(room.getByRole('button', { name: 'Nudge' })).toHaveCount(0);
});
