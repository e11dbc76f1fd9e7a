import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { befriendInUi, closeContexts, conversation, groupConversation, sayIn, signUpInUi, startChat } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

test('a contact is invited into a conversation, three people talk, one leaves', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  const carol = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await signUpInUi(carol, server.url, 'carol', 'carol-password');
  await befriendInUi(alice, 'alice', bob, 'bob');
  await befriendInUi(alice, 'alice', carol, 'carol');

  await startChat(alice, 'bob');
  const withBob = conversation(alice, 'bob');
  await withBob.getByRole('button', { name: 'Invite someone' }).click();
  await withBob.getByLabel('Contact to invite').selectOption({ label: 'carol' });
  await withBob.getByRole('button', { name: 'Invite', exact: true }).click();

  // A new window for the three of them opens at alice's; the others see it when it speaks.
  const atAlice = groupConversation(alice, 'bob and carol');
  await expect(atAlice).toBeVisible();
  await expect(atAlice.getByText('carol has joined the conversation.')).toBeVisible();
  await expect(atAlice).toContainText('(3 members)');
  await sayIn(atAlice, 'bob and carol', 'Welcome to the three of us :)');

  const atBob = groupConversation(bob, 'alice and carol');
  const atCarol = groupConversation(carol, 'alice and bob');
  await expect(atBob.getByText('Welcome to the three of us')).toBeVisible();
  await expect(atCarol.getByText('Welcome to the three of us')).toBeVisible();
  await expect(atCarol.getByText('You have joined the conversation.')).toBeVisible();
  await expect(atBob.getByRole('img', { name: 'smile' })).toBeVisible();

  await sayIn(atCarol, 'alice and bob', 'Hi both!');
  await expect(atAlice.getByText('Hi both!')).toBeVisible();
  await expect(atBob.getByText('Hi both!')).toBeVisible();
  await sayIn(atBob, 'alice and carol', 'Hello from bob');
  await expect(atAlice.getByText('Hello from bob')).toBeVisible();
  await expect(atCarol.getByText('Hello from bob')).toBeVisible();

  // Carol leaves: her window closes, the others see it and the titles follow.
  await atCarol.getByRole('button', { name: 'Leave' }).click();
  await expect(atCarol).toBeHidden();
  await expect(groupConversation(alice, 'bob').getByText('carol has left the conversation.')).toBeVisible();
  await expect(groupConversation(bob, 'alice').getByText('carol has left the conversation.')).toBeVisible();
  await expect(groupConversation(alice, 'bob')).toContainText('(2 members)');
  // The one-to-one conversation of alice and bob was never touched.
  await expect(withBob.getByText('carol has joined the conversation.')).toHaveCount(0);
});
