// `stepvideo serve` (single process, built-in model) driven by the official `openai` npm client:
// create (the SDK's multipart body, with Step-Video fields), poll, download, list, delete; the
// token checked as the SDK sends its API key (--token or STEPVIDEO_API_TOKEN); the video equal to
// the one the pipeline makes in this process. The same client through the Redis queue is in
// server-queue.test.ts.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import OpenAI, { AuthenticationError, BadRequestError } from 'openai';
import type { VideoCreateParams } from 'openai/resources/videos';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { projectRoot, runCli } from '../helpers/cli.js';
import { testCacheDir } from '../helpers/pipeline.js';
import { type CliProcess, startServe } from '../helpers/processes.js';

const TOKEN = 'sk-local-test';
const noQueueModules = `--import ${pathToFileURL(path.join(projectRoot, 'test', 'helpers', 'no-queue', 'register.mjs')).href}`;
const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-openai-'));
let serve: CliProcess;
let client: OpenAI;
let sv: StepVideo;

beforeAll(async () => {
  // Without BullMQ and ioredis importable: the single-process server needs neither.
  const started = await startServe(['--device', 'cpu', '--max-size', '64'], { STEPVIDEO_API_TOKEN: TOKEN, NODE_OPTIONS: noQueueModules });
  serve = started.process;
  client = new OpenAI({ apiKey: TOKEN, baseURL: `${started.url}/v1`, maxRetries: 0 });
  sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
});

afterAll(async () => {
  serve?.kill('SIGKILL');
  await serve?.exited;
  sv?.dispose();
  rmSync(work, { recursive: true, force: true });
});

describe('stepvideo serve with the openai client (single process)', () => {
  it('creates, polls, downloads, lists and deletes a video; the bytes are the pipeline’s', async () => {
    const params = { model: 'step-video-t2v-turbo', prompt: 'a paper boat', seconds: '0.7', size: '48x32', seed: 9, steps: 3, cfg_scale: 4, format: 'mp4' };
    const created = await client.videos.create(params as unknown as VideoCreateParams);
    expect(created).toMatchObject({ object: 'video', model: 'step-video-t2v-turbo', status: 'queued', seconds: '0.7', size: '48x32', prompt: 'a paper boat' });
    let video = created;
    const deadline = Date.now() + 60_000;
    const seen = new Set<string>();
    while (video.status === 'queued' || video.status === 'in_progress') {
      if (Date.now() > deadline) throw new Error('the video did not finish within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
      video = await client.videos.retrieve(created.id);
      seen.add(video.status);
    }
    expect(video).toMatchObject({ status: 'completed', progress: 100, error: null });
    expect(video.completed_at).toBeGreaterThanOrEqual(video.created_at);
    const bytes = Buffer.from(await (await client.videos.downloadContent(created.id)).arrayBuffer());
    expect(bytes.subarray(4, 8).toString('latin1'), 'an MP4 file').toBe('ftyp');

    // The pipeline in this process, asked the same (turbo preset, 17 frames of 48x32, 3 steps, cfg 4, seed 9).
    const direct = path.join(work, 'direct.mp4');
    await (await sv.generate({ prompt: 'a paper boat', preset: 'turbo', frames: 17, height: 32, width: 48, steps: 3, cfgScale: 4, seed: 9 })).save(direct);
    expect(bytes.equals(readFileSync(direct)), 'the served video is the pipeline’s').toBe(true);

    const ids: string[] = [];
    for await (const v of client.videos.list({ limit: 1 })) ids.push(v.id);
    expect(ids).toContain(created.id);
    expect(await client.videos.delete(created.id)).toMatchObject({ id: created.id, deleted: true });
    await expect(client.videos.retrieve(created.id)).rejects.toMatchObject({ status: 404 });
  });

  it('answers in the SDK’s error shapes: a bad value, an image input, a wrong key', async () => {
    const tooLong = client.videos.create({ prompt: 'x', seconds: '12' } as VideoCreateParams);
    await expect(tooLong).rejects.toBeInstanceOf(BadRequestError);
    await expect(tooLong).rejects.toMatchObject({ status: 400, param: 'seconds' });
    await expect(client.videos.create({ prompt: 'x', size: '4096x4096' } as unknown as VideoCreateParams)).rejects.toMatchObject({ status: 400, param: 'size' });
    const stranger = new OpenAI({ apiKey: 'sk-wrong', baseURL: client.baseURL, maxRetries: 0 });
    await expect(stranger.videos.list()).rejects.toBeInstanceOf(AuthenticationError);
    expect(serve.running).toBe(true);
  });

  it('refuses queue options that cannot work, naming them', async () => {
    const cases: [string[], RegExp][] = [
      [['worker', '--results', work], /ERR_USAGE.*needs --queue/],
      [['worker', '--queue', 'redis://127.0.0.1:1'], /ERR_USAGE.*needs --results/],
      [['worker', '--queue', 'http://127.0.0.1:1', '--results', work], /ERR_USAGE.*redis:\/\/ or rediss:\/\//],
      [['worker', '--queue', 'redis://127.0.0.1:1', '--results', work, '--roles', 'video,dit'], /ERR_USAGE.*--roles/],
      [['serve', '--queue', 'redis://127.0.0.1:1', '--results', work, '--model', work], /ERR_USAGE.*--model is a worker's option/],
      [['serve', '--queue', 'redis://127.0.0.1:1'], /ERR_USAGE.*--results/],
      [['generate', 'x', '--device', 'cuda:x'], /ERR_USAGE.*--device/],
      // Where the packages are missing, a queue asked for says what to install.
      [['serve', '--queue', 'redis://127.0.0.1:1', '--results', work, '--port', '0'], /ERR_UNSUPPORTED.*npm install bullmq ioredis/],
    ];
    for (const [args, pattern] of cases) {
      const result = await runCli(args, { timeoutMs: 30_000, env: { NODE_OPTIONS: noQueueModules } });
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stderr, args.join(' ')).toMatch(pattern);
    }
  });
});
