// What the browser benchmarks share: the release server on a free port with an empty
// database, and Debian's headless Chromium.
import { chromium } from '@playwright/test';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** Starts the server (MESSENGER_BIN, default target/messenger) with `env` added; resolves
 * once it answers `/health`. `stop()` kills it and removes its database. */
export async function startServer(env = {}) {
  const binary = process.env.MESSENGER_BIN ?? 'target/messenger';
  const port = await new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'messenger-bench-'));
  const proc = spawn(binary, [], {
    env: {
      ...process.env,
      MESSENGER_ADDR: `127.0.0.1:${port}`,
      MESSENGER_DATABASE: path.join(dir, 'bench.db'),
      RUST_LOG: 'warn',
      // The benches make their users by script from one address.
      MESSENGER_VERIFICATION: 'off',
      MESSENGER_GUESTS_PER_ADDRESS: '1000000000/1s',
      MESSENGER_SIGNUPS_PER_ADDRESS: '1000000000/1s',
      MESSENGER_FRAME_RATE: '1000000',
      MESSENGER_MAX_SOCKETS_PER_ADDRESS: '1000000',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const stop = () => {
    proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(`${base}/health`)).ok) return { base, stop };
    } catch {}
    if (Date.now() > deadline) {
      stop();
      throw new Error(`${binary} did not start (run \`make release\` first)`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Debian's Chromium, headless (Playwright's own download cannot run here). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
