// Every spec imports `test` from here: it is Playwright's, with a watch on the
// Content-Security-Policy. Each browser context a test opens (its own, or the `page`
// fixture's) reports violations: an init script listens for `securitypolicyviolation`, and
// with JavaScript off Chromium still logs its refusals. A test fails if a page broke its
// policy even once.
import { test as base, expect, BrowserContext } from '@playwright/test';

async function watch(ctx: BrowserContext, violations: string[]) {
  await ctx.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(
        `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`,
      );
    });
  });
  ctx.on('console', (msg) => {
    const text = msg.text();
    if (text.includes('Content Security Policy') || text.startsWith('CSP violation')) {
      violations.push(text);
    }
  });
}

export const test = base.extend<{ cspViolations: string[]; cspWatch: void }>({
  cspViolations: async ({}, use) => {
    await use([]);
  },
  cspWatch: [
    async ({ browser, cspViolations }, use) => {
      const newContext = browser.newContext.bind(browser);
      browser.newContext = async (options) => {
        const ctx = await newContext(options);
        await watch(ctx, cspViolations);
        return ctx;
      };
      await use();
      browser.newContext = newContext;
      expect(cspViolations, 'no Content-Security-Policy violation').toEqual([]);
    },
    { auto: true },
  ],
  context: async ({ context, cspViolations }, use) => {
    await watch(context, cspViolations);
    await use(context);
  },
});

export { expect };
