// Helpers for the pipeline, CLI, server and eval suites: the built-in model's cache folder shared by
// every test process (made once, atomically), a video probe with ffmpeg alone (the bundled build has no ffprobe),
// leftover temporary files, and a CLI child process that can be interrupted.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { requireFfmpeg } from '../../lib/video/index.js';
import { cliPath, projectRoot } from './cli.js';

/** Shared by the test processes; the built-in model is keyed by version and hash inside it. */
export const testCacheDir = process.env.STEPVIDEO_CACHE_DIR ?? path.join(os.tmpdir(), 'stepvideo-test-cache');

export interface ProbedVideo {
  codec: string;
  pixFmt: string;
  width: number;
  height: number;
  frames: number;
  fps: string;
}

/**
 * The first video stream of a file, read with ffmpeg alone (the bundled @ffmpeg-installer build has
 * no ffprobe): the input's stream line, and the frames counted by decoding to one checksum line per
 * frame. `ffmpeg` defaults to the one the library would use (FFMPEG_PATH, PATH, else bundled).
 */
export function probeVideo(file: string, ffmpeg = requireFfmpeg().path): ProbedVideo {
  const result = spawnSync(ffmpeg, ['-hide_banner', '-nostats', '-i', file, '-map', '0:v:0', '-f', 'framemd5', '-'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) throw new Error(`${ffmpeg} could not decode ${file}: ${result.error?.message ?? result.stderr}`);
  const stream = /Stream #0:0.*?: Video: (\w+).*?, (\w+)(?:\([^)]*\))?, (\d+)x(\d+).*?, ([\d.]+) fps/.exec(result.stderr);
  if (stream === null) throw new Error(`no video stream line in ffmpeg's output for ${file}:\n${result.stderr}`);
  const frames = result.stdout.split('\n').filter((line) => line !== '' && !line.startsWith('#')).length;
  return { codec: stream[1]!, pixFmt: stream[2]!, width: Number(stream[3]), height: Number(stream[4]), frames, fps: `${stream[5]}/1` };
}

/** Temporary files the writers make beside their target (`.<name>.tmp-...`); none may survive. */
export function leftovers(dir: string): string[] {
  return readdirSync(dir).filter((name) => name.includes('.tmp-'));
}

export interface CliChild {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves once stderr matches `pattern` (rejects if the process ends first). */
  waitForStderr: (pattern: RegExp) => Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The built CLI as a child process (stdin closed, stdout/stderr captured; killed after timeoutMs). */
export function spawnCli(args: readonly string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): CliChild {
  const child = spawn(process.execPath, [cliPath, ...args], {
    cwd: projectRoot,
    env: { ...process.env, STEPVIDEO_CACHE_DIR: testCacheDir, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const watchers = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    for (const check of watchers) check();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  const waitForStderr = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (pattern.test(err)) {
          watchers.delete(check);
          resolve();
        }
      };
      watchers.add(check);
      check();
      void exited.then(() => {
        if (watchers.has(check)) reject(new Error(`the CLI exited before printing ${pattern}; stderr:\n${err}`));
      });
    });
  return { child, stdout: () => out, stderr: () => err, waitForStderr, exited };
}

/** Runs the CLI to completion with the shared model cache. */
export async function runCliToEnd(args: readonly string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = spawnCli(args, options);
  const { code } = await cli.exited;
  return { code, stdout: cli.stdout(), stderr: cli.stderr() };
}
