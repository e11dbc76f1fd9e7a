import { test, expect } from './fixtures';
import path from 'node:path';
import { Messenger } from '../server';
import { befriendInUi, closeContexts, contactEntry, conversation, signUpInUi, startChat } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

const sunnyHill = path.join(__dirname, '..', 'fixtures', 'sunny-hill.png');

test('an uploaded display picture shows for the contact, in the list and in the conversation', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await befriendInUi(alice, 'alice', bob, 'bob');

  // Everyone starts with the default picture.
  const bobSeesAlice = contactEntry(bob, 'alice').locator('img.picture');
  await expect(bobSeesAlice).toHaveAttribute('src', '/default-picture.svg');

  // Something that is not a picture is refused with a clear message, and nothing changes.
  await alice.getByLabel('Change your display picture').setInputFiles({
    name: 'holiday.png', mimeType: 'image/png', buffer: Buffer.from('<html>not a picture</html>'),
  });
  await expect(alice.getByRole('alert')).toContainText('not a PNG, JPEG, GIF or WebP picture');
  await expect(bobSeesAlice).toHaveAttribute('src', '/default-picture.svg');

  await alice.getByLabel('Change your display picture').setInputFiles(sunnyHill);
  await expect(alice.locator('.me-card img.picture')).toHaveAttribute('src', /\/api\/users\/\d+\/picture\?v=[0-9a-f]{16}$/);
  await expect(bobSeesAlice).toHaveAttribute('src', /\/api\/users\/\d+\/picture\?v=[0-9a-f]{16}$/);
  // The browser really loaded it: the server's 96 x 96 re-encoding.
  await expect.poll(() => bobSeesAlice.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(96);

  await startChat(bob, 'alice');
  const inWindow = conversation(bob, 'alice').getByRole('img', { name: 'Display picture of alice' });
  await expect(inWindow).toHaveAttribute('src', /picture\?v=/);
  await expect.poll(() => inWindow.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(96);

  // Back to the default, live.
  await alice.getByRole('button', { name: 'Remove picture' }).click();
  await expect(bobSeesAlice).toHaveAttribute('src', '/default-picture.svg');
  await expect(inWindow).toHaveAttribute('src', '/default-picture.svg');
});
