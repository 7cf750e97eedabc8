// A real Redis server for the queue tests: Debian's redis-server on a free loopback port, with an
// append-only file in a temporary folder so a restart keeps the queue (as a production Redis with
// persistence does). .ci/run installs redis-server; with STEPVIDEO_REQUIRE_REDIS=1 (CI) a missing
// one fails the suite, elsewhere the suite is skipped with the reason printed.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const redisRequired = process.env.STEPVIDEO_REQUIRE_REDIS === '1';
const redisPresent = spawnSync('redis-server', ['--version']).status === 0;

/** True when the suite should run; throws when Redis is required and missing. */
export function requireRedis(): boolean {
  if (redisPresent) return true;
  const message = 'redis-server not found on PATH (Debian: apt-get install redis-server)';
  if (redisRequired) throw new Error(`${message}; STEPVIDEO_REQUIRE_REDIS=1 makes this a failure`);
  console.warn(`skipping the Redis queue suite: ${message}`);
  return false;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export class RedisServer {
  readonly port: number;
  readonly password: string | undefined;
  readonly #dir: string;
  #process: ChildProcess | undefined;

  private constructor(port: number, password: string | undefined) {
    this.port = port;
    this.password = password;
    this.#dir = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-redis-'));
  }

  static async start(options: { password?: string } = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), options.password);
    await server.#spawn();
    return server;
  }

  /** redis://[:password@]127.0.0.1:port */
  get url(): string {
    return `redis://${this.password !== undefined ? `:${encodeURIComponent(this.password)}@` : ''}127.0.0.1:${this.port}`;
  }

  /** A redis-cli command's output (trimmed). */
  cli(...args: string[]): string {
    const auth = this.password !== undefined ? ['-a', this.password, '--no-auth-warning'] : [];
    const result = spawnSync('redis-cli', ['-p', String(this.port), ...auth, ...args], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`redis-cli ${args.join(' ')}: ${result.stderr}`);
    return result.stdout.trim();
  }

  /** Shuts the server down (its append-only file flushed) and starts it again on the same port and data. */
  async restart(downMs = 500): Promise<void> {
    await this.#shutdown();
    await new Promise((resolve) => setTimeout(resolve, downMs));
    await this.#spawn();
  }

  async stop(): Promise<void> {
    await this.#shutdown();
    rmSync(this.#dir, { recursive: true, force: true });
  }

  async #spawn(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.#dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always'];
    if (this.password !== undefined) args.push('--requirepass', this.password);
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    this.#process = child;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        if (this.cli('ping') === 'PONG') return;
      } catch {
        // not up yet
      }
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start on port ${this.port}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async #shutdown(): Promise<void> {
    const child = this.#process;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await exited;
  }
}
