import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { closeContexts, waitOnline } from './helpers';

// The sign-in window with bot verification on (ALTCHA, as `make run` has it), in a real
// browser: the widget, served by this server, solves its challenge in the background and
// the forms go through; the address limits answer with the window's own words.
let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start({
    MESSENGER_VERIFICATION: 'altcha',
    MESSENGER_ALTCHA_COST: '50',
    MESSENGER_ALTCHA_MAX_TRIES: '200',
    MESSENGER_GUESTS_PER_ADDRESS: '2/1h',
    MESSENGER_SIGNIN_FAILURES_PER_ACCOUNT: '1/1h',
  });
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

test('with ALTCHA on, guests and new accounts pass the widget, and an address makes so many guests', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  const requests: string[] = [];
  page.on('request', (r) => requests.push(r.url()));
  await page.goto(server.url);
  // Try as guest: the widget solves when the form is sent, then sends it.
  await page.getByRole('button', { name: 'Try as guest' }).click();
  await expect(page).toHaveURL(`${server.url}/app`);
  await waitOnline(page);
  // Nothing was asked of any other site.
  expect(requests.filter((u) => !u.startsWith(server.url))).toEqual([]);

  const other = await (await browser.newContext()).newPage();
  await other.goto(server.url);
  await other.getByText('New to Messenger? Create an account').click();
  await other.getByLabel('New username').fill('vera');
  await other.getByLabel('Choose a password').fill('vera-password');
  // Sending the form first solves the challenge, then sends it.
  await other.getByRole('button', { name: 'Create account' }).click();
  await expect(other).toHaveURL(`${server.url}/app`);
  await waitOnline(other);

  // A second guest is allowed from this address, a third is not.
  const second = await (await browser.newContext()).newPage();
  await second.goto(server.url);
  await second.getByRole('button', { name: 'Try as guest' }).click();
  await expect(second).toHaveURL(`${server.url}/app`);
  const third = await (await browser.newContext()).newPage();
  await third.goto(server.url);
  await third.getByRole('button', { name: 'Try as guest' }).click();
  await expect(third.getByRole('alert')).toHaveText('Too many attempts. Wait a little, then try again.');
});

test('after a wrong password the account asks for verification, and a click at once still signs in', async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  await page.goto(server.url);
  await page.getByText('New to Messenger? Create an account').click();
  await page.getByLabel('New username').fill('wes');
  await page.getByLabel('Choose a password').fill('wes-password');
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(`${server.url}/app`);
  await waitOnline(page);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(`${server.url}/`);

  // One wrong password spends this account's allowance (1 here)...
  await page.getByLabel('Username', { exact: true }).fill('wes');
  await page.getByLabel('Password', { exact: true }).fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page.getByRole('alert')).toHaveText('Wrong username or password.');
  // ... so the right one is asked for verification, never made to wait.
  await page.getByLabel('Password', { exact: true }).fill('wes-password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page).toHaveURL(`${server.url}/?mode=signin&username=wes&error=verification_needed`);
  // Clicking at once, before the widget has done anything, sends the form once it has.
  await page.getByLabel('Password', { exact: true }).fill('wes-password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await expect(page).toHaveURL(`${server.url}/app`);
  await waitOnline(page);
});

test("a click before the widget's script has loaded waits for it, then signs in", async ({ browser }) => {
  const page = await (await browser.newContext()).newPage();
  // The widget's script is held back, as on a slow network, until the click has been made.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  await page.route('**/altcha/altcha.js', async (route) => {
    await held;
    await route.continue();
  });
  // Module scripts hold back DOMContentLoaded, so the page is taken as soon as it arrives.
  await page.goto(server.url, { waitUntil: 'commit' });
  const guest = page.getByRole('button', { name: 'Try as guest' });
  // Sent now, the form would go without its proof and come back refused.
  await expect(guest).toBeDisabled();
  const clicking = guest.click();
  release();
  await clicking;
  await expect(page).toHaveURL(`${server.url}/app`);
  await waitOnline(page);
});
