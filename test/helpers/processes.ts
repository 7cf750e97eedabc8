// Long-running CLI processes for the server tests (`stepvideo serve`, `stepvideo worker`): started
// in the background, their output collected, lines awaited, signals sent, always killed at the end.
import { type ChildProcess, spawn } from 'node:child_process';

import { cliPath, projectRoot } from './cli.js';
import { testCacheDir } from './pipeline.js';

export class CliProcess {
  readonly name: string;
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;
  #waiters: Array<() => void> = [];

  constructor(name: string, args: readonly string[], env: Record<string, string> = {}) {
    this.name = name;
    this.child = spawn(process.execPath, [cliPath, ...args], {
      cwd: projectRoot,
      env: { ...process.env, STEPVIDEO_CACHE_DIR: testCacheDir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const wake = () => {
      for (const waiter of this.#waiters.splice(0)) waiter();
    };
    this.child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString();
      wake();
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      wake();
    });
    this.exited = new Promise((resolve) => this.child.on('close', (code) => {
      wake();
      resolve(code);
    }));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves with the first match of `pattern` in stdout + stderr; rejects on timeout or exit. */
  async waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = (this.stdout + this.stderr).match(pattern);
      if (match) return match;
      if (!this.running) throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${pattern}:\n${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no ${pattern} within ${timeoutMs} ms:\n${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.child.kill(signal);
  }
}

/** `stepvideo serve …`; resolves once it prints its URL. */
export async function startServe(args: readonly string[], env: Record<string, string> = {}): Promise<{ process: CliProcess; url: string }> {
  const process = new CliProcess('serve', ['serve', '--port', '0', ...args], env);
  const [url] = await process.waitFor(/^http:\/\/\S+$/m);
  return { process, url };
}

/** `stepvideo worker …` on the CPU; resolves once it is taking jobs. */
export async function startWorker(name: string, args: readonly string[]): Promise<CliProcess> {
  const worker = new CliProcess(name, ['worker', '--device', 'cpu', ...args]);
  await worker.waitFor(/stepvideo worker: ready/);
  return worker;
}
