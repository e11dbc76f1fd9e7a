// Takes the screenshots in docs/screenshots/ (not a test: `make screenshots` runs it with
// its own config). Two people talk, one nudges, and the windows are captured as they are.
import { test, expect } from '@playwright/test';
import path from 'node:path';
import { Messenger } from '../server';
import { befriendInUi, conversation, say, signUpInUi, startChat } from '../tests/helpers';

const out = path.resolve(__dirname, '..', '..', 'docs', 'screenshots');

test('the main window and a conversation window', async ({ browser }) => {
  const server = await Messenger.start();
  try {
    const alice = await (await browser.newContext({ viewport: { width: 1100, height: 720 } })).newPage();
    const bob = await (await browser.newContext()).newPage();
    await signUpInUi(alice, server.url, 'alice', 'alice-password');
    await signUpInUi(bob, server.url, 'bob', 'bob-password');
    await befriendInUi(alice, 'alice', bob, 'bob');
    const pm = bob.getByLabel('Your personal message');
    await pm.fill('Listening to: Daft Punk (L)');
    await pm.press('Enter');
    await alice.getByRole('toolbar').getByRole('button', { name: 'Add an AI contact' }).click();
    await alice.getByRole('button', { name: 'Add Ask Ada' }).click();
    await startChat(alice, 'bob');
    await say(alice, 'bob', 'Hi Bob! Are you coming tonight? :)');
    await say(alice, 'bob', 'We start at eight.');
    await say(bob, 'alice', 'Yes! (Y) I will bring the cake (^)');
    await conversation(bob, 'alice').getByRole('button', { name: 'Nudge' }).click();
    const window = conversation(alice, 'bob');
    await expect(window.getByText('bob sent a nudge.')).toBeVisible();
    await expect(window).not.toHaveClass(/shaking/);
    await alice.locator('.main-window').screenshot({ path: path.join(out, 'main-window.png') });
    await window.screenshot({ path: path.join(out, 'conversation-window.png') });
    await alice.screenshot({ path: path.join(out, 'desktop.png') });
  } finally {
    await server.dispose();
  }
});
