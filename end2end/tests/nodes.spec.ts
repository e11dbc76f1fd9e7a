import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { befriendInUi, closeContexts, contactEntry, conversation, say, signUpInUi, startChat } from './helpers';

// Two nodes of one installation (docs/SCALING.md) on the machine's PostgreSQL and NATS, each
// user's browser on a different node: they become contacts, see each other online, chat, and
// when one node is killed its user is shown offline to the other, until they come back.
const root = path.resolve(__dirname, '..', '..');
const binary = process.env.MESSENGER_BIN ?? path.join(root, 'target', 'messenger');
const admin = process.env.MESSENGER_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const nats = process.env.MESSENGER_TEST_NATS ?? 'nats://127.0.0.1:4222';

let nodes: Messenger[] = [];
let database = '';
let dir = '';
test.beforeEach(async () => {
  database = `messenger_e2e_${process.pid}_${Date.now()}`;
  execFileSync('psql', [admin, '-qc', `CREATE DATABASE ${database}`]);
  const url = `${admin.slice(0, admin.lastIndexOf('/'))}/${database}`;
  dir = mkdtempSync(path.join(os.tmpdir(), 'messenger-nodes-'));
  const ring = path.join(dir, 'ring');
  execFileSync(binary, ['--database', url, '--key-file', ring, 'keys', 'init']);
  const env = {
    MESSENGER_DATABASE: url,
    MESSENGER_NATS: nats,
    MESSENGER_NATS_PREFIX: database,
    MESSENGER_KEY_FILE: ring,
    MESSENGER_MEDIA_STORE: path.join(dir, 'media'),
    MESSENGER_ANALYTICS: 'off',
  };
  nodes = [await Messenger.start(env), await Messenger.start(env)];
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  for (const node of nodes) await node.dispose();
  rmSync(dir, { recursive: true, force: true });
  execFileSync('psql', [admin, '-qc', `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`]);
});

test('two users on two nodes chat, see each other, and a killed node takes its user offline', async ({ browser }) => {
  const [a, b] = nodes;
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, a.url, 'alice', 'alice-password');
  await signUpInUi(bob, b.url, 'bob', 'bob-password');
  // The request goes through node A, the acceptance through node B; each sees the other online.
  await befriendInUi(alice, 'alice', bob, 'bob');
  await expect(contactEntry(bob, 'alice')).toHaveAttribute('data-status', 'online');

  await startChat(alice, 'bob');
  await say(alice, 'bob', 'Hello from node A');
  await bob.getByRole('button', { name: 'alice', exact: true }).click();
  await expect(conversation(bob, 'alice').getByText('Hello from node A')).toBeVisible();
  await say(bob, 'alice', 'And hello from node B');
  await expect(conversation(alice, 'bob').getByText('And hello from node B')).toBeVisible();

  // Node B dies at once: bob is offline for alice within the node timeout (5 s).
  await b.stop('SIGKILL');
  await expect(contactEntry(alice, 'bob')).toHaveAttribute('data-status', 'offline', { timeout: 15_000 });
  // Bob's page, reopened on node A (a load balancer would do this), brings him back.
  await bob.goto(`${a.url}/app`);
  await expect(contactEntry(alice, 'bob')).toHaveAttribute('data-status', 'online', { timeout: 15_000 });
  await expect(conversation(alice, 'bob').getByText('And hello from node B')).toBeVisible();
});
