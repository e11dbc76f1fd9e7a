import net from 'node:net';
import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { befriendInUi, closeContexts, contactEntry, conversation, linkState, myStatus, say, signUpInUi, startChat } from './helpers';

/** A TCP proxy in front of the server that can go silent: while frozen it forwards nothing
 * and closes nothing, as a network that went away. Connections it held then stay dead. */
class Proxy {
  private frozen = false;
  private dead = new Set<net.Socket>();
  private constructor(private readonly server: net.Server, readonly port: number) {}

  static async listen(target: () => number): Promise<Proxy> {
    let proxy!: Proxy;
    const server = net.createServer((client) => {
      if (proxy.frozen) {
        // Accepted and never answered.
        proxy.dead.add(client);
        client.on('error', () => {});
        return;
      }
      const upstream = net.connect(target(), '127.0.0.1');
      for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
        from.on('data', (d) => {
          if (proxy.frozen) {
            proxy.dead.add(client);
            proxy.dead.add(upstream);
          } else if (!proxy.dead.has(from)) {
            to.write(d);
          }
        });
        from.on('close', () => {
          if (!proxy.frozen && !proxy.dead.has(from)) to.destroy();
        });
        from.on('error', () => {});
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    proxy = new Proxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  freeze() {
    this.frozen = true;
  }

  thaw() {
    this.frozen = false;
  }

  close() {
    for (const s of this.dead) s.destroy();
    this.server.close();
  }
}

let server: Messenger;
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

test('a connection that goes silent is noticed within 15 s, shown, and recovers', async ({ browser }) => {
  test.setTimeout(120_000);
  let target = 0;
  const viaA = await Proxy.listen(() => target);
  const viaB = await Proxy.listen(() => target);
  server = await Messenger.start({ MESSENGER_PUBLIC_ORIGIN: `${viaA.url},${viaB.url}` });
  target = server.port;
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, viaA.url, 'alice', 'alice-password');
  await signUpInUi(bob, viaB.url, 'bob', 'bob-password');
  await befriendInUi(alice, 'alice', bob, 'bob');
  await startChat(alice, 'bob');
  const banner = alice.getByRole('alert').filter({ hasText: 'You are offline.' });
  await expect(banner).toHaveCount(0);

  // Alice's network goes away without a word.
  viaA.freeze();
  await expect(banner).toBeVisible({ timeout: 15_000 });
  await expect(linkState(alice)).not.toHaveText('Connected');
  // Her own status no longer reads plain Online.
  await expect(myStatus(alice)).toHaveAccessibleName('Your status: Online (not connected)');
  // Nobody's presence is known meanwhile: the dots grey out.
  await expect(contactEntry(alice, 'bob').locator('.status-dot')).toHaveCSS('filter', 'grayscale(1)');
  // What she sends waits, and says so.
  await say(alice, 'bob', 'sent while offline');
  await expect(conversation(alice, 'bob').getByText('waiting for the connection…')).toBeVisible();

  // "Retry now" tries at once instead of waiting for the next attempt (which the dead
  // network swallows again).
  await expect(banner).toContainText(/reconnecting in \d+ s/);
  await banner.getByRole('button', { name: 'Retry now' }).click();
  await expect(banner).toContainText('Reconnecting…');
  // The network comes back: the page is online again by itself.
  viaA.thaw();
  await expect(banner).toHaveCount(0, { timeout: 30_000 });
  await expect(linkState(alice)).toHaveText('Connected');
  await expect(myStatus(alice)).toHaveAccessibleName('Your status: Online');
  await expect(contactEntry(alice, 'bob').locator('.status-dot')).toHaveCSS('filter', 'none');
  await expect(conversation(bob, 'alice').getByText('sent while offline')).toBeVisible();
  await expect(conversation(alice, 'bob').getByText('waiting for the connection…')).toHaveCount(0);
  viaA.close();
  viaB.close();
});
