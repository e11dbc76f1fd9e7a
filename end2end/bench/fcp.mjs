// First contentful paint of the sign-in page, measured with the Performance API in headless
// Chromium (Debian's). Starts the release server on a free port with an empty database, then
// loads the page RUNS times, each in a new browser context (an empty cache, as a first visit).
//   usage: node end2end/bench/fcp.mjs [RUNS]      (from the repository root; `make bench` runs it)
import { chromium } from '@playwright/test';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const runs = Number(process.argv[2] ?? 20);
const binary = process.env.MESSENGER_BIN ?? 'target/messenger';

const port = await new Promise((resolve, reject) => {
  const srv = net.createServer();
  srv.once('error', reject);
  srv.listen(0, '127.0.0.1', () => {
    const { port } = srv.address();
    srv.close(() => resolve(port));
  });
});
const dir = mkdtempSync(path.join(os.tmpdir(), 'messenger-fcp-'));
const server = spawn(binary, [], {
  env: {
    ...process.env,
    MESSENGER_ADDR: `127.0.0.1:${port}`,
    MESSENGER_DATABASE: path.join(dir, 'fcp.db'),
    RUST_LOG: 'warn',
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});
const url = `http://127.0.0.1:${port}/`;

try {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`${url}health`)).ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${binary} did not start (run \`make release\` first)`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
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
  server.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
