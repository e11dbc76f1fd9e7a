import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { closeContexts, say, signUpInUi, startChat, conversation } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

test('an administrator opens the console and a ready-made query draws a chart; nobody else gets in', async ({ browser }) => {
  const admin = await (await browser.newContext()).newPage();
  const user = await (await browser.newContext()).newPage();
  await signUpInUi(admin, server.url, 'olga', 'olga-password');
  await signUpInUi(user, server.url, 'pete', 'pete-password');
  server.admin('admin', 'grant', 'olga');
  // Some traffic for the analytics.
  await startChat(user, 'olga');
  await say(user, 'olga', 'hello there');
  await expect(conversation(admin, 'pete').getByText('hello there')).toBeVisible();

  // A normal user is refused, page and API alike.
  const refused = await user.goto(`${server.url}/admin`);
  expect(refused?.status()).toBe(403);
  await expect(user.getByText('Only administrators may use the admin console.')).toBeVisible();
  const api = await user.request.get(`${server.url}/api/admin/query?sql=SELECT%201`);
  expect(api.status()).toBe(403);

  await admin.goto(`${server.url}/admin`);
  await expect(admin.getByRole('heading', { name: 'Administration' })).toBeVisible();
  await expect(admin.getByText('Users online')).toBeVisible();
  // A message's analytics row is written once its second is over (src/server/analytics.rs):
  // the query is asked again until the message is there.
  await expect(async () => {
    await admin.getByRole('link', { name: 'Messages per minute by conversation type' }).click();
    await expect(admin.getByRole('status')).toContainText(/[1-9]\d* rows? in \d+ ms/, {
      timeout: 2_000,
    });
  }).toPass({ timeout: 15_000 });
  await expect(admin.getByRole('img', { name: "The query's answer over time" })).toBeVisible();
  await expect(admin.getByRole('columnheader', { name: 'dm' })).toBeVisible();

  // The numbers follow the server without a reload: a new user's socket shows.
  await admin.goto(`${server.url}/admin`);
  const sockets = admin.locator('[data-live="sockets"]');
  const before = Number(await sockets.textContent());
  const third = await (await browser.newContext()).newPage();
  await signUpInUi(third, server.url, 'quin', 'quin-password');
  await expect(sockets).toHaveText(String(before + 1), { timeout: 15_000 });

  // A write is refused with the reason, and changes nothing.
  await admin.getByRole('textbox', { name: 'Query' }).fill('DELETE FROM events');
  await admin.getByRole('button', { name: 'Run' }).click();
  await expect(admin.getByRole('alert')).toContainText('Only reading statements');
});

test('an administrator disables an account after entering the password again; it is signed out and cannot sign in', async ({ browser }) => {
  const admin = await (await browser.newContext()).newPage();
  const user = await (await browser.newContext()).newPage();
  await signUpInUi(admin, server.url, 'olga', 'olga-password');
  await signUpInUi(user, server.url, 'pete', 'pete-password');
  server.admin('admin', 'grant', 'olga');
  await admin.goto(`${server.url}/admin`);
  await admin.getByRole('link', { name: 'Users' }).click();
  await admin.getByLabel('Find accounts').fill('pete');
  await admin.getByRole('button', { name: 'Search' }).click();
  await admin.getByRole('button', { name: 'Disable pete' }).click();
  await expect(admin.getByRole('alert')).toContainText('Enter your password again first');
  await admin.getByLabel(/Your password/).fill('olga-password');
  await admin.getByRole('button', { name: 'Confirm' }).click();
  await expect(admin.getByRole('status')).toContainText('Password confirmed');
  await admin.getByRole('button', { name: 'Disable pete' }).click();
  await expect(admin.getByRole('status')).toContainText('The account is disabled');
  await expect(admin.getByRole('row', { name: /pete/ })).toContainText('disabled');
  await expect(user.getByRole('alertdialog', { name: 'Your session has ended' })).toBeVisible();
  const again = await (await browser.newContext()).newPage();
  await again.goto(server.url);
  await again.getByLabel('Username', { exact: true }).fill('pete');
  await again.getByLabel('Password', { exact: true }).fill('pete-password');
  await again.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(again.getByRole('alert')).toHaveText('This account has been disabled by an administrator.');
});

test('an administrator stops the AI contacts and finds it in the audit log, whose chain holds', async ({ browser }) => {
  const admin = await (await browser.newContext()).newPage();
  await signUpInUi(admin, server.url, 'olga', 'olga-password');
  server.admin('admin', 'grant', 'olga');
  await admin.goto(`${server.url}/admin/bots`);
  await expect(admin.getByText('Circuit breaker')).toBeVisible();
  await admin.getByRole('button', { name: 'Stop every AI reply' }).click();
  await expect(admin.getByText('The AI contacts stopped answering')).toBeVisible();
  await expect(admin.getByRole('button', { name: 'Let the AI contacts answer' })).toBeVisible();
  await admin.getByRole('link', { name: 'Audit log' }).click();
  await expect(admin.getByRole('status')).toContainText('The chain holds');
  await expect(admin.getByRole('cell', { name: 'bots_off' })).toBeVisible();
});

test('an administrator adds, renames and archives a room; a member sees each change at once', async ({ browser }) => {
  const admin = await (await browser.newContext()).newPage();
  const user = await (await browser.newContext()).newPage();
  await signUpInUi(admin, server.url, 'olga', 'olga-password');
  await signUpInUi(user, server.url, 'pete', 'pete-password');
  server.admin('admin', 'grant', 'olga');
  await admin.goto(`${server.url}/admin/rooms`);
  await admin.getByLabel('New room').fill('Quiz night');
  await admin.getByRole('button', { name: 'Add', exact: true }).click();
  await expect(admin.getByRole('status')).toContainText('The room was added');
  await expect(admin.getByRole('row', { name: /Quiz night/ })).toContainText('open');

  // Pete finds it after a reload, joins and writes.
  await user.reload();
  await user.getByRole('button', { name: /^Quiz night/ }).click();
  await say(user, 'Quiz night', 'first question?');

  await admin.getByLabel('New title for Quiz night').fill('Quiz club');
  await admin.getByRole('button', { name: 'Rename Quiz night' }).click();
  await expect(admin.getByRole('status')).toContainText('new title');
  await expect(conversation(user, 'Quiz club')).toBeVisible();

  await admin.getByRole('button', { name: 'Archive Quiz club' }).click();
  await expect(admin.getByRole('alert')).toContainText('Enter your password again first');
  await admin.getByLabel(/Your password/).fill('olga-password');
  await admin.getByRole('button', { name: 'Confirm' }).click();
  await expect(admin.getByRole('status')).toContainText('Password confirmed');
  await admin.getByRole('button', { name: 'Archive Quiz club' }).click();
  await expect(admin.getByRole('status')).toContainText('The room is archived');
  await expect(admin.getByRole('row', { name: /Quiz club/ })).toContainText('archived');
  await expect(conversation(user, 'Quiz club')).toHaveCount(0);
  await expect(user.getByRole('button', { name: /^Quiz club/ })).toHaveCount(0);

  await admin.getByRole('button', { name: 'Restore Quiz club' }).click();
  await expect(admin.getByRole('status')).toContainText('The room is back');
  await expect(user.getByRole('button', { name: /^Quiz club/ })).toBeVisible();
});
