import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { closeContexts, signUpInUi } from './helpers';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

// The policy every other spec runs under is really enforced, and the watch that fails them
// really sees a violation: a script added without the page's nonce does not run.
test('an inline script without the nonce is blocked, and the watch sees it', async ({ browser, cspViolations }) => {
  const page = await (await browser.newContext()).newPage();
  await signUpInUi(page, server.url, 'xena', 'xena-password');
  const ran = await page.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = 'window.__injected = true;';
    document.body.append(s);
    await new Promise((r) => setTimeout(r, 100));
    return (window as unknown as { __injected?: boolean }).__injected === true;
  });
  expect(ran).toBe(false);
  await expect.poll(() => cspViolations.length).toBeGreaterThan(0);
  expect(cspViolations.join('\n')).toContain('script-src');
  // Seen; this test's own violation is not a failure.
  cspViolations.length = 0;
});
