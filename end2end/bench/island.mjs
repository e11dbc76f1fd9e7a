// The island's work per incoming message, for a user with a long contact list: the main
// thread's script and task time (Chrome's Performance.getMetrics) while MESSAGES messages
// arrive in an open conversation window, divided by MESSAGES. Starts the release server on a
// free port with an empty database; CONTACTS accepted contacts are made over the HTTP API.
//   usage: node end2end/bench/island.mjs [CONTACTS] [MESSAGES]   (from the repository root)
// MESSENGER_BIN and MESSENGER_SITE_ROOT choose the build (scripts/bench-ab.sh sets them).
import { launchChromium, startServer } from './serve.mjs';

const contactCount = Number(process.argv[2] ?? 200);
const messages = Number(process.argv[3] ?? 300);
// The sender sends faster than a person; the island is what is measured.
const { base, stop } = await startServer({ MESSENGER_SEND_RATE: '10000' });

/** A JSON call with a bearer token; throws on a refusal. */
async function call(method, pathname, token, body) {
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

try {
  const browser = await launchChromium();

  // Alice signs up in the browser; the API gives her a bearer token too.
  const alice = await (await browser.newContext()).newPage();
  await alice.goto(base);
  await alice.getByText('New to Messenger? Create an account').click();
  await alice.getByLabel('New username').fill('alice');
  await alice.getByLabel('Choose a password').fill('alice-password');
  await alice.getByRole('button', { name: 'Create account' }).click();
  await alice.getByRole('status', { name: 'Connection' }).getByText('Connected').waitFor();
  const aliceToken = (await call('POST', '/api/token', null, { username: 'alice', password: 'alice-password' })).token;

  // CONTACTS guests ask alice; she accepts them all.
  for (let i = 0; i < contactCount; i++) {
    const guest = await call('POST', '/api/token', null, { guest: true });
    await call('POST', '/api/contacts', guest.token, { username: 'alice' });
    await call('POST', `/api/contacts/${guest.user.id}/accept`, aliceToken);
  }
  const shown = alice.locator('.contact-row');
  while ((await shown.count()) < contactCount) await new Promise((r) => setTimeout(r, 200));

  // Bob, a guest, writes from a page of his own over a plain WebSocket (no island on his
  // side); the page's cookie signs the socket in.
  const bobContext = await browser.newContext();
  const origin = { Origin: base, Accept: 'application/json' };
  const guest = await bobContext.request.post(`${base}/api/guest`, { headers: origin, form: {} });
  if (!guest.ok()) throw new Error(`guest: ${guest.status()}`);
  const dmRes = await bobContext.request.post(`${base}/api/dm`, { headers: origin, data: { username: 'alice' } });
  if (!dmRes.ok()) throw new Error(`dm: ${dmRes.status()} ${await dmRes.text()}`);
  const dm = await dmRes.json();
  const bob = await bobContext.newPage();
  await bob.goto(`${base}/health`);
  const send = (from, count, pace) => bob.evaluate(async ({ url, conv, from, count, pace }) => {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    let acked = 0;
    const done = new Promise((resolve) => {
      ws.onmessage = (e) => {
        if (JSON.parse(e.data).t === 'ack' && ++acked === count) resolve();
      };
    });
    for (let i = 0; i < count; i++) {
      ws.send(JSON.stringify({ t: 'send', conv, client_id: `b${from + i}`, body: `message ${from + i}` }));
      await new Promise((r) => setTimeout(r, pace));
    }
    await done;
    ws.close();
  }, { url: `${base.replace('http', 'ws')}/ws`, conv: dm.id, from, count, pace });

  // The first message opens alice's window; then the measured ones.
  await send(0, 1, 0);
  const lines = alice.locator('.conv-window .line');
  await lines.first().waitFor();
  const cdp = await alice.context().newCDPSession(alice);
  await cdp.send('Performance.enable');
  const metric = async () => {
    const { metrics } = await cdp.send('Performance.getMetrics');
    const get = (name) => metrics.find((m) => m.name === name).value;
    return { script: get('ScriptDuration'), task: get('TaskDuration') };
  };
  const before = await metric();
  await send(1, messages, 20);
  // Let the last frames land, then look once (polling would add its own script time).
  await new Promise((r) => setTimeout(r, 1000));
  const after = await metric();
  const seen = await lines.count();
  if (seen !== messages + 1) throw new Error(`alice's window shows ${seen} lines, not ${messages + 1}`);
  const per = (d) => ((d * 1000) / messages).toFixed(3);
  console.log(
    `island: ${contactCount} contacts, ${messages} messages into an open window: ` +
    `script ${per(after.script - before.script)} ms, task ${per(after.task - before.task)} ms per message`,
  );
  await browser.close();
} finally {
  stop();
}
