import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { befriendInUi, closeContexts, conversation, say, signInInUi, signUpInUi, startChat, waitOnline, setStatus } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

test('the typing indicator shows and clears; a nudge shakes both windows and is limited', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  await bob.getByRole('button', { name: 'alice', exact: true }).click();
  const atBob = conversation(bob, 'alice');
  const atAlice = conversation(alice, 'bob');
  await expect(atBob).toBeVisible();

  const box = atAlice.getByLabel('Message to bob');
  await box.pressSequentially('Hello th');
  await expect(atBob.getByText('alice is writing a message…')).toBeVisible();
  await box.pressSequentially('ere');
  await box.press('Enter');
  await expect(atBob.getByText('Hello there')).toBeVisible();
  await expect(atBob.getByText('alice is writing a message…')).toBeHidden();

  // Typing, then emptying the box, clears it too.
  await box.pressSequentially('never mind');
  await expect(atBob.getByText('alice is writing a message…')).toBeVisible();
  await box.fill('');
  await expect(atBob.getByText('alice is writing a message…')).toBeHidden();

  // Bob nudges: both windows shake, both histories say so.
  await atBob.getByRole('button', { name: 'Nudge' }).click();
  await expect(atAlice).toHaveClass(/shaking/);
  // Each window counts the nudges it shook for (the shaking itself lasts only 0.7 s).
  await expect(atAlice).toHaveAttribute('data-nudges', '1');
  await expect(atBob).toHaveAttribute('data-nudges', '1');
  await expect(atAlice.getByText('bob sent a nudge.')).toBeVisible();
  await expect(atBob.getByText('You sent a nudge.')).toBeVisible();
  await expect(atAlice).not.toHaveClass(/shaking/);
  await expect(atAlice).toHaveAttribute('data-nudges', '1');
  // Again at once: refused, with a message, and nothing new in alice's window.
  await atBob.getByRole('button', { name: 'Nudge' }).click();
  await expect(atBob.getByRole('alert')).toHaveText('You can send a nudge once every 10 seconds.');
  await say(bob, 'alice', 'sorry!');
  await expect(atAlice.getByText('sorry!')).toBeVisible();
  await expect(atAlice.getByText('bob sent a nudge.')).toHaveCount(1);
  // The nudge is in the history after a reload.
  await alice.reload();
  await waitOnline(alice);
  await alice.getByRole('button', { name: /^bob/ }).click();
  await expect(conversation(alice, 'bob').getByText('bob sent a nudge.')).toBeVisible();
});

test('emoticons render as pictures, come from the picker, and the text stays plain', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  const atAlice = conversation(alice, 'bob');
  const box = atAlice.getByLabel('Message to bob');
  await box.fill('I (L) this :)');
  await atAlice.getByRole('button', { name: 'Emoticons' }).click();
  await atAlice.getByRole('group', { name: 'Choose an emoticon' }).getByRole('button', { name: 'thumbs up' }).click();
  await expect(box).toHaveValue('I (L) this :) (Y) ');
  await expect(box).toBeFocused();
  await box.press('Enter');

  const atBob = conversation(bob, 'alice');
  const line = atBob.locator('.line .body').last();
  await expect(line.getByRole('img', { name: 'heart' })).toBeVisible();
  await expect(line.getByRole('img', { name: 'smile' })).toBeVisible();
  await expect(line.getByRole('img', { name: 'thumbs up' })).toBeVisible();
  await expect(line).toHaveText(/^I\s+this\s*$/);
  // What is stored is the text as typed.
  const res = await bob.request.get(`${server.url}/api/history?conv=${await convId(bob)}`);
  const page = await res.json();
  expect(page.messages.at(-1).body).toBe('I (L) this :) (Y) ');
});

/** The id of the only one-to-one conversation in the page's history requests. */
async function convId(page: import('@playwright/test').Page): Promise<number> {
  const res = await page.request.get(`${server.url}/api/session`);
  expect(res.ok()).toBeTruthy();
  const dm = await page.request.post(`${server.url}/api/dm`, {
    data: { username: 'alice' },
    headers: { Origin: server.url },
  });
  expect(dm.ok()).toBeTruthy();
  return (await dm.json()).id;
}

test('messages sent while someone is signed out wait for them with an unread count', async ({ browser }) => {
  await server.signUp('bob', 'bob-password');
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await startChat(alice, 'bob');
  await say(alice, 'bob', 'Are you coming tonight?');
  await say(alice, 'bob', 'Call me when you see this');
  await expect(conversation(alice, 'bob').locator('.line.pending')).toHaveCount(0);

  await signInInUi(bob, server.url, 'bob', 'bob-password');
  await waitOnline(bob);
  const entry = bob.getByRole('button', { name: /^alice/ });
  await expect(entry.getByLabel('2 unread')).toBeVisible();
  await entry.click();
  await expect(conversation(bob, 'alice').getByText('Call me when you see this')).toBeVisible();
  await expect(entry.getByLabel('2 unread')).toBeHidden();
  // Read is remembered: no count after signing in again.
  await bob.reload();
  await waitOnline(bob);
  await expect(bob.getByRole('button', { name: /^alice/ })).toBeVisible();
  await expect(bob.locator('.unread')).toHaveCount(0);
});

test('deleting your own message removes it for both, live and after a reload', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  await say(alice, 'bob', 'this was meant for someone else');
  await say(alice, 'bob', 'hello bob');
  const atBob = conversation(bob, 'alice');
  await expect(atBob.getByText('this was meant for someone else')).toBeVisible();
  // Bob has no delete button on alice's lines.
  await expect(atBob.getByRole('button', { name: 'Delete this message' })).toHaveCount(0);

  const atAlice = conversation(alice, 'bob');
  await atAlice.locator('.line', { hasText: 'this was meant for someone else' })
    .getByRole('button', { name: 'Delete this message' }).click();
  await expect(atBob.getByText('this was meant for someone else')).toBeHidden();
  await expect(atAlice.getByText('this was meant for someone else')).toBeHidden();
  await expect(atBob.getByText('hello bob')).toBeVisible();

  await bob.reload();
  await waitOnline(bob);
  await bob.getByRole('button', { name: /^alice/ }).click();
  await expect(conversation(bob, 'alice').getByText('hello bob')).toBeVisible();
  await expect(conversation(bob, 'alice').getByText('this was meant for someone else')).toBeHidden();
});

test('older messages load from the history server function when the history is scrolled to the top', async ({ browser }) => {
  // Forty-five quick sends: above the default burst of the per-connection rate limit.
  await server.dispose();
  server = await Messenger.start({ MESSENGER_SEND_RATE: '500' });
  await server.signUp('bob', 'bob-password');
  const alice = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await startChat(alice, 'bob');
  for (let i = 1; i <= 45; i++) {
    await say(alice, 'bob', `Message number ${i}`);
  }
  await expect(conversation(alice, 'bob').locator('.line.pending')).toHaveCount(0);

  const bob = await (await browser.newContext()).newPage();
  await signInInUi(bob, server.url, 'bob', 'bob-password');
  await waitOnline(bob);
  await bob.getByRole('button', { name: /^alice/ }).click();
  const history = conversation(bob, 'alice').getByRole('log', { name: 'Messages' });
  await expect(history.getByText('Message number 45', { exact: true })).toBeVisible();
  // A window opens with the newest 30; the first 15 are not there yet.
  await expect(history.locator('.line .body')).toHaveCount(30);
  await expect(history.getByText('Message number 1', { exact: true })).toHaveCount(0);

  const older = bob.waitForResponse((r) => /\/api\/history\?conv=\d+&before=16&/.test(r.url()));
  await history.evaluate((el) => el.scrollTo(0, 0));
  expect((await older).status()).toBe(200);
  await expect(history.getByText('Message number 1', { exact: true })).toBeVisible();
  await expect(history.locator('.line .body')).toHaveCount(45);
  await expect(history.getByText('This is the start of the conversation.')).toBeVisible();
});

test('two users join a public room from the list and talk there', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  for (const page of [alice, bob]) {
    const joined = page.waitForResponse((r) => /\/api\/rooms\/\d+\/join$/.test(r.url()));
    await page.getByRole('button', { name: /^Lobby/ }).click();
    expect((await joined).status()).toBe(200);
    await expect(conversation(page, 'Lobby')).toBeVisible();
  }
  await say(alice, 'Lobby', 'Anyone here for the quiz?');
  await expect(conversation(bob, 'Lobby').getByText('Anyone here for the quiz?')).toBeVisible();
  await say(bob, 'Lobby', 'Count me in');
  await expect(conversation(alice, 'Lobby').getByText('Count me in')).toBeVisible();
});

test('an arriving message redraws only the window it lands in, not the header, the menus or the list', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  const carol = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await signUpInUi(carol, server.url, 'carol', 'carol-password');
  await befriendInUi(alice, 'alice', bob, 'bob');
  await befriendInUi(alice, 'alice', carol, 'carol');
  await startChat(alice, 'bob');
  const atAlice = conversation(alice, 'bob');
  await say(alice, 'bob', 'first');
  await expect(conversation(bob, 'alice').getByText('first')).toBeVisible();
  // Alice is about to invite carol when messages come in.
  await atAlice.getByRole('button', { name: 'Invite someone' }).click();
  await atAlice.getByLabel('Contact to invite').selectOption({ label: 'carol' });

  // Tag the elements a message has no business replacing.
  const tagged = ['.conv-peer-status', 'select', '.line[data-seq="1"]'];
  await atAlice.evaluate((win, selectors) => {
    for (const s of selectors) (win.querySelector(s) as HTMLElement).dataset.kept = 'yes';
    (document.querySelector('.contact-row[data-user="bob"]') as HTMLElement).dataset.kept = 'yes';
  }, tagged);

  for (const text of ['one', 'two', 'three']) {
    await say(bob, 'alice', text);
    await expect(atAlice.getByText(text, { exact: true })).toBeVisible();
  }
  for (const s of tagged) {
    await expect(atAlice.locator(`${s}[data-kept="yes"]`), s).toHaveCount(1);
  }
  await expect(alice.locator('.contact-row[data-user="bob"][data-kept="yes"]')).toHaveCount(1);
  await expect(atAlice.getByLabel('Contact to invite').locator('option:checked')).toHaveText('carol');
  // What does change still shows: bob's status, in the same header.
  await setStatus(bob, 'Busy');
  await expect(atAlice.locator('.conv-peer-status')).toHaveText(' (Busy)');
});

test('deleting a conversation from your list clears it on your side only, until a new message', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  await say(alice, 'bob', 'an old line');
  const atBob = conversation(bob, 'alice');
  await expect(atBob.getByText('an old line')).toBeVisible();
  const list = alice.getByRole('navigation', { name: 'Contacts, conversations and rooms' });
  await expect(list.getByRole('button', { name: /^bob/ })).toBeVisible();

  await conversation(alice, 'bob').getByRole('button', { name: 'Delete the conversation with bob from your list' }).click();
  await expect(conversation(alice, 'bob')).toBeHidden();
  await expect(list.getByRole('button', { name: /^bob/ })).toHaveCount(0);
  await alice.reload();
  await waitOnline(alice);
  await expect(list.getByRole('button', { name: /^bob/ })).toHaveCount(0);
  await expect(atBob.getByText('an old line')).toBeVisible();

  await atBob.getByLabel('Message to alice').fill('a new line');
  await atBob.getByLabel('Message to alice').press('Enter');
  const atAlice = conversation(alice, 'bob');
  await expect(atAlice.getByText('a new line')).toBeVisible();
  await expect(atAlice.getByText('an old line')).toBeHidden();
  await expect(list.getByRole('button', { name: /^bob/ })).toBeVisible();
});
