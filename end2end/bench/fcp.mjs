// First contentful paint of the sign-in page, measured with the Performance API in headless
// Chromium (Debian's). Starts the release server on a free port with an empty database, then
// loads the page RUNS times, each in a new browser context (an empty cache, as a first visit).
//   usage: node end2end/bench/fcp.mjs [RUNS]      (from the repository root; `make bench` runs it)
import { launchChromium, startServer } from './serve.mjs';

const runs = Number(process.argv[2] ?? 20);
const { base, stop } = await startServer();
const url = `${base}/`;

try {
  const browser = await launchChromium();
  const fcps = [];
  let bytes = 0;
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(url, { waitUntil: 'load' });
    const m = await page.evaluate(() => new Promise((resolve) => {
      const done = (fcp) => {
        const transferred = performance.getEntriesByType('navigation')
          .concat(performance.getEntriesByType('resource'))
          .reduce((sum, e) => sum + (e.transferSize ?? 0), 0);
        resolve({ fcp, transferred });
      };
      const entry = performance.getEntriesByName('first-contentful-paint')[0];
      if (entry) return done(entry.startTime);
      new PerformanceObserver((list) => {
        const e = list.getEntriesByName('first-contentful-paint')[0];
        if (e) done(e.startTime);
      }).observe({ type: 'paint', buffered: true });
    }));
    // The page must really be the sign-in window, not an error page.
    if (!(await page.getByRole('button', { name: /sign in/i }).first().isVisible())) {
      throw new Error('the sign-in page did not render');
    }
    fcps.push(m.fcp);
    bytes = m.transferred;
    await context.close();
  }
  await browser.close();
  fcps.sort((a, b) => a - b);
  const q = (p) => fcps[Math.min(fcps.length - 1, Math.floor(p * fcps.length))];
  console.log(
    `fcp: sign-in page, ${runs} first visits in headless Chromium: median ${q(0.5).toFixed(1)} ms, ` +
    `p90 ${q(0.9).toFixed(1)} ms, min ${fcps[0].toFixed(1)} ms, max ${fcps[fcps.length - 1].toFixed(1)} ms ` +
    `(${(bytes / 1024).toFixed(1)} KiB transferred before load)`,
  );
} finally {
  stop();
}
