import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { closeContexts } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

/** How many web-vitals beacons the server took, from its metrics (read from this machine). */
async function beaconsTaken(): Promise<number> {
  const page = await (await fetch(`${server.url}/metrics`)).text();
  const line = page.split('\n').find((l) => l.startsWith('messenger_http_requests_total{route="/api/rum",method="POST",status="204"}'));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('a page sends its web vitals once when it is left, without a cookie being needed', async ({ browser }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(server.url);
  await expect(page.getByRole('button', { name: 'Sign in', exact: true })).toBeVisible();
  // Something to measure an interaction by.
  await page.getByLabel('Username', { exact: true }).click();
  expect(await beaconsTaken()).toBe(0);
  // Leaving the page (pagehide) sends the beacon.
  await page.goto(`${server.url}/?mode=signup`);
  await expect.poll(beaconsTaken).toBe(1);
  // The script is served from the site, as the Content-Security-Policy wants.
  const script = await (await fetch(`${server.url}/rum.js`)).text();
  expect(script).toContain('sendBeacon');
});
