// Starts the real Messenger binary on a free port with a fresh SQLite database, and can stop,
// kill and restart it on the same port and database.
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(__dirname, '..');
const binary = process.env.MESSENGER_BIN ?? path.join(root, 'target', 'messenger');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export class Messenger {
  private proc?: ChildProcess;
  private log = '';
  private constructor(readonly port: number, readonly dir: string, readonly env: Record<string, string>) {}

  static async start(env: Record<string, string> = {}): Promise<Messenger> {
    const m = new Messenger(await freePort(), mkdtempSync(path.join(os.tmpdir(), 'messenger-e2e-')), env);
    await m.boot();
    return m;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async boot(): Promise<void> {
    this.proc = spawn(binary, [], {
      cwd: root,
      env: {
        ...process.env,
        MESSENGER_ADDR: `127.0.0.1:${this.port}`,
        MESSENGER_DATABASE: path.join(this.dir, 'messenger.db'),
        RUST_LOG: 'warn',
        // Every spec signs many people up from 127.0.0.1; the per-address limits and the
        // bot verification have their own spec (door.spec.ts), which turns them back on.
        MESSENGER_VERIFICATION: 'off',
        MESSENGER_GUESTS_PER_ADDRESS: '100000/1s',
        MESSENGER_SIGNUPS_PER_ADDRESS: '100000/1s',
        MESSENGER_SIGNIN_FAILURES_PER_ADDRESS: '100000/1s',
        MESSENGER_SIGNIN_FAILURES_PER_ACCOUNT_AND_ADDRESS: '100000/1s',
        ...this.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc.stdout?.on('data', (d) => (this.log += d));
    this.proc.stderr?.on('data', (d) => (this.log += d));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`server exited early:\n${this.log}`);
      try {
        const res = await fetch(`${this.url}/health`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`server did not start:\n${this.log}`);
  }

  /** Stops the server with `signal` (SIGTERM: graceful; SIGKILL: a crash) and waits for it. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await exited;
  }

  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.stop(signal);
    await this.boot();
  }

  async dispose(): Promise<void> {
    await this.stop('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Runs an administration command of the binary on this server's database
   * (`admin grant alice`, `rooms list`, ...); its standard output. */
  admin(...args: string[]): string {
    return execFileSync(binary, args, {
      env: { ...process.env, MESSENGER_DATABASE: path.join(this.dir, 'messenger.db') },
      encoding: 'utf8',
    });
  }

  /** Creates an account over the HTTP API (faster than the form when a test needs a user). */
  async signUp(username: string, password: string): Promise<void> {
    const res = await fetch(`${this.url}/api/signup`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Origin: this.url },
      body: new URLSearchParams({ username, password }).toString(),
    });
    if (res.status !== 201) throw new Error(`sign-up of ${username} failed: ${res.status} ${await res.text()}`);
  }
}
