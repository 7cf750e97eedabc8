// Helpers for the pipeline, CLI, server and eval suites: the built-in model's cache folder shared by
// every test process (made once, atomically), ffprobe, leftover temporary files, and a CLI child
// process that can be interrupted.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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
 * The first video stream of a file, as ffprobe reports it (frames counted by decoding). ffprobe
 * comes with ffmpeg, which .ci/run installs: a machine without it fails here, by design.
 */
export function probeVideo(file: string): ProbedVideo {
  const ffprobe = process.env.FFMPEG_PATH ? path.join(path.dirname(process.env.FFMPEG_PATH), 'ffprobe') : 'ffprobe';
  const result = spawnSync(ffprobe, ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,pix_fmt,width,height,nb_read_frames,r_frame_rate', '-of', 'json', file], { encoding: 'utf8' });
  if (result.error) throw new Error(`ffprobe (installed with ffmpeg) is required for the MP4 tests: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`ffprobe failed on ${file}: ${result.stderr}`);
  const stream = (JSON.parse(result.stdout) as { streams: Array<Record<string, string | number>> }).streams[0]!;
  return { codec: String(stream.codec_name), pixFmt: String(stream.pix_fmt), width: Number(stream.width), height: Number(stream.height), frames: Number(stream.nb_read_frames), fps: String(stream.r_frame_rate) };
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
