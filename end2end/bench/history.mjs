// History reads with encryption at rest on and off: the release server (MESSENGER_BIN,
// default target/messenger) with MESSAGES messages in the Lobby, then READS sequential
// `GET /api/history` pages of 100 messages; prints reads per second and the median and
// p99 latency, for `on` and `off` alternately, REPEATS times each.
//   usage: node end2end/bench/history.mjs [MESSAGES] [READS] [REPEATS]   (from the repository root)
import { launchChromium, startServer } from './serve.mjs';

const messages = Number(process.argv[2] ?? 2000);
const reads = Number(process.argv[3] ?? 2000);
const repeats = Number(process.argv[4] ?? 3);

async function call(base, method, pathname, token, body) {
  const res = await fetch(base + pathname, {
    method,
    headers: {
      'Content-Type': 'application/json',
      Accept: 'application/json',
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${pathname}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.json();
}

/** Sends `count` messages to the Lobby from a guest's page in Chromium (Node 20 has no
 * WebSocket of its own), 64 in flight, and waits for the acks. */
async function fill(browser, base, count) {
  const context = await browser.newContext();
  const origin = { Origin: base, Accept: 'application/json' };
  const guest = await context.request.post(`${base}/api/guest`, { headers: origin, form: {} });
  if (!guest.ok()) throw new Error(`guest: ${guest.status()}`);
  const joined = await context.request.post(`${base}/api/rooms/1/join`, { headers: origin });
  if (!joined.ok()) throw new Error(`join: ${joined.status()}`);
  const page = await context.newPage();
  await page.goto(`${base}/health`);
  await page.evaluate(
    async ({ url, count }) => {
      const ws = new WebSocket(url);
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = reject;
      });
      let sent = 0;
      let acked = 0;
      await new Promise((resolve) => {
        const more = () => {
          while (sent < count && sent - acked < 64) {
            sent += 1;
            const body = `message ${sent}: the quick brown fox jumps over the lazy dog`;
            ws.send(JSON.stringify({ t: 'send', conv: 1, client_id: `h${sent}`, body }));
          }
        };
        ws.onmessage = (ev) => {
          if (JSON.parse(ev.data).t === 'ack') {
            acked += 1;
            if (acked === count) resolve();
            else more();
          }
        };
        more();
      });
      ws.close();
    },
    { url: base.replace('http', 'ws') + '/ws', count },
  );
  await context.close();
}

async function run(browser, encryption) {
  const { base, stop } = await startServer({ MESSENGER_ENCRYPTION: encryption, MESSENGER_SEND_RATE: '1000000' });
  try {
    const me = await call(base, 'POST', '/api/token', null, { guest: true });
    await call(base, 'POST', '/api/rooms/1/join', me.token);
    await fill(browser, base, messages);
    const times = [];
    const started = performance.now();
    for (let i = 0; i < reads; i++) {
      // Pages from the newest back, wrapping around.
      const before = messages - ((i * 100) % messages) + 1;
      const t = performance.now();
      const page = await call(base, 'GET', `/api/history?conv=1&before=${before}&limit=100`, me.token);
      times.push(performance.now() - t);
      if (page.messages.length === 0) throw new Error('an empty page');
    }
    const wall = (performance.now() - started) / 1000;
    times.sort((a, b) => a - b);
    const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
    return { rate: reads / wall, p50: at(0.5), p99: at(0.99) };
  } finally {
    stop();
  }
}

const browser = await launchChromium();
for (let r = 1; r <= repeats; r++) {
  const order = r % 2 === 1 ? ['on', 'off'] : ['off', 'on'];
  for (const encryption of order) {
    const { rate, p50, p99 } = await run(browser, encryption);
    console.log(
      `repeat ${r} encryption=${encryption}: ${rate.toFixed(0)} history pages/s (100 messages each), p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms`,
    );
  }
}
await browser.close();
