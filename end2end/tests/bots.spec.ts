import { test, expect } from './fixtures';
import { Messenger } from '../server';
import {
  befriendInUi, closeContexts, contactEntry, conversation, groupConversation, sayIn, signUpInUi, startChat,
} from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

test('an AI contact is added, answers one-to-one after typing, and answers an @mention in a group', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');

  await alice.getByRole('toolbar').getByRole('button', { name: 'Add an AI contact' }).click();
  const list = alice.getByRole('dialog', { name: 'Add an AI contact' });
  // Each with its picture and a line about it.
  await expect(list.locator('li')).toHaveCount(7);
  await expect(list.locator('li img.picture')).toHaveCount(7);
  await expect(list.getByText('Keeps three virtual pets on keychains')).toBeVisible();
  await list.getByRole('button', { name: 'Add Tamagotchi Tina' }).click();
  // The list closes once one is added.
  await expect(list).toHaveCount(0);
  await expect(alice.getByRole('button', { name: 'AI contacts (1)' })).toBeVisible();
  const tina = contactEntry(alice, 'tina_pet');
  await expect(tina).toHaveAttribute('data-status', 'online');
  await expect(tina).toContainText('3 pets alive');
  await expect(tina.locator('img.picture')).toHaveAttribute('src', /\/api\/users\/\d+\/picture\?v=/);

  await tina.getByRole('button', { name: /^Tamagotchi Tina \(Online\)/ }).click();
  const window = conversation(alice, 'Tamagotchi Tina');
  await sayIn(window, 'Tamagotchi Tina', 'hello Tina! are you hungry?');
  // Typing first, then an answer in character (she turns everything into pet care).
  await expect(window.getByText('Tamagotchi Tina is writing a message…')).toBeVisible();
  const answer = window.locator('.line:not(.mine)').last();
  await expect(answer).toContainText('Tamagotchi Tina says:');
  await expect(window.getByText('Tamagotchi Tina is writing a message…')).toBeHidden();
  // Whatever she picks for a greeting and hunger, it is about her virtual pets.
  await expect(answer.locator('.body')).toContainText(/pets|Pixel|Mochi/);

  // A group with bob and Dial-Up Dave: only an @mention makes Dave answer.
  await befriendInUi(alice, 'alice', bob, 'bob');
  await alice.getByRole('toolbar').getByRole('button', { name: 'Add an AI contact' }).click();
  await alice.getByRole('button', { name: 'Add Dial-Up Dave' }).click();
  await expect(contactEntry(alice, 'dialup_dave')).toBeVisible();
  await startChat(alice, 'bob');
  const withBob = conversation(alice, 'bob');
  await withBob.getByRole('button', { name: 'Invite someone' }).click();
  await withBob.getByLabel('Contact to invite').selectOption({ label: 'Dial-Up Dave' });
  await withBob.getByRole('button', { name: 'Invite', exact: true }).click();
  const group = groupConversation(alice, 'Dial-Up Dave and bob');
  await expect(group.getByText('Dial-Up Dave has joined the conversation.')).toBeVisible();
  await sayIn(group, 'Dial-Up Dave and bob', 'just saying hi to bob');
  await sayIn(group, 'Dial-Up Dave and bob', '@dialup_dave are you still on 56k?');
  await expect(group.locator('.line', { hasText: 'Dial-Up Dave says:' })).toHaveCount(1);
  // Bob sees Dave's answer too.
  const atBob = groupConversation(bob, 'Dial-Up Dave and alice');
  await expect(atBob.locator('.line', { hasText: 'Dial-Up Dave says:' })).toHaveCount(1);
  await expect(atBob.getByText('just saying hi to bob')).toBeVisible();
});
