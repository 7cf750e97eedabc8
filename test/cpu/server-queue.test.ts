// `stepvideo serve --queue` API nodes and `stepvideo worker` processes on a real Redis (loopback,
// with a password), the built-in model on the CPU: the OpenAI client through the queue; many jobs
// over two API nodes and three workers with one worker killed mid-job (every job completes exactly
// once, with the bytes a single-process run makes); a cancel reaching the running worker; bad input
// failing once; a full queue's 429; Redis restarted under load; SIGTERM handing a job back.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { Queue } from 'bullmq';
import OpenAI, { AuthenticationError, RateLimitError } from 'openai';
import type { VideoCreateParams } from 'openai/resources/videos';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { StepVideoWorker } from '../../lib/server/queue/worker.js';
import { testCacheDir } from '../helpers/pipeline.js';
import { type CliProcess, startServe, startWorker } from '../helpers/processes.js';
import { RedisServer, requireRedis } from '../helpers/redis.js';

const run = requireRedis();
const TOKEN = 'test-token-1234';
const auth = { authorization: `Bearer ${TOKEN}` };
const short = { frames: 17, height: 32, width: 32, steps: 2 };
/** About 3 s of one core here: long enough to be caught running. */
const long = { frames: 34, height: 64, width: 64, steps: 100 };

interface VideoObject {
  id: string;
  status: string;
  progress: number;
  error: { code: string; message: string } | null;
  stepvideo: { status: string; seed: string | null };
}

describe.skipIf(!run)('stepvideo serve --queue and stepvideo worker (real Redis, built-in model)', () => {
  const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-queue-'));
  const results = path.join(work, 'results');
  const processes: CliProcess[] = [];
  let redis: RedisServer;
  let apiA: string;
  let apiB: string;
  let workers: CliProcess[] = [];
  let sv: StepVideo;
  const references = new Map<string, Buffer>();

  const workerArgs = () => ['--queue', redis.url, '--results', results, '--stall-timeout', '2', '--grace', '0', '--max-size', '64', '--max-steps', '400'];
  async function addWorker(name: string): Promise<CliProcess> {
    const worker = await startWorker(name, workerArgs());
    processes.push(worker);
    workers.push(worker);
    return worker;
  }

  /** The same request run by the pipeline in this process (the single-process result). */
  async function reference(seed: number, size: typeof short): Promise<Buffer> {
    const key = `${seed}:${JSON.stringify(size)}`;
    if (!references.has(key)) {
      const file = path.join(work, `ref-${seed}-${size.steps}.y4m`);
      await (await sv.generate({ prompt: `seed ${seed}`, ...size, seed })).save(file);
      references.set(key, readFileSync(file));
    }
    return references.get(key)!;
  }

  async function post(api: string, body: Record<string, unknown>): Promise<Response> {
    return fetch(`${api}/v1/videos`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  }

  async function submit(api: string, body: Record<string, unknown>): Promise<VideoObject> {
    const response = await post(api, body);
    expect(response.status, await response.clone().text()).toBe(200);
    return (await response.json()) as VideoObject;
  }

  async function get(api: string, id: string): Promise<VideoObject> {
    const response = await fetch(`${api}/v1/videos/${id}`, { headers: auth });
    expect(response.status, await response.clone().text()).toBe(200);
    return (await response.json()) as VideoObject;
  }

  /** Polls until the job's own status is one of `statuses`. */
  async function waitStatus(api: string, id: string, statuses: string[], timeoutMs = 90_000): Promise<VideoObject> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const video = await get(api, id);
      if (statuses.includes(video.stepvideo.status)) return video;
      if (Date.now() > deadline) throw new Error(`job ${id} is ${video.stepvideo.status}, not ${statuses.join('/')}, after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  async function content(api: string, id: string): Promise<Buffer> {
    const response = await fetch(`${api}/v1/videos/${id}/content`, { headers: auth });
    expect(response.status).toBe(200);
    return Buffer.from(await response.arrayBuffer());
  }

  /** Which worker logged that it started the job (the latest attempt). */
  function runnerOf(id: string): CliProcess | undefined {
    return workers.filter((w) => w.stderr.includes(`job ${id} started`)).at(-1);
  }

  /** 'completed' events of each job in the queue's event stream: what "completed exactly once" means in BullMQ. */
  function completions(): Map<string, number> {
    const stream = redis.cli('--raw', 'XRANGE', 'stepvideo:videos:events', '-', '+').split('\n');
    const counts = new Map<string, number>();
    for (let i = 0; i + 3 < stream.length; i++) {
      if (stream[i] === 'event' && stream[i + 1] === 'completed' && stream[i + 2] === 'jobId') counts.set(stream[i + 3]!, (counts.get(stream[i + 3]!) ?? 0) + 1);
    }
    return counts;
  }

  /** A job's server-sent events through an API node, to the stream's end. */
  async function readEvents(api: string, id: string): Promise<{ event: string; data: Record<string, unknown> }[]> {
    const response = await fetch(`${api}/v1/videos/${id}/events`, { headers: auth });
    expect(response.status).toBe(200);
    const events: { event: string; data: Record<string, unknown> }[] = [];
    for (const block of (await response.text()).split('\n\n')) {
      const lines = block.split('\n').filter((l) => l !== '' && !l.startsWith(':'));
      if (lines.length === 0) continue;
      events.push({ event: lines.find((l) => l.startsWith('event: '))!.slice(7), data: JSON.parse(lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')) as Record<string, unknown> });
    }
    return events;
  }

  beforeAll(async () => {
    redis = await RedisServer.start({ password: 'p@ss word' });
    sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
    // The preview map, fitted once here and kept in the model folder, where the workers find it.
    await sv.previewer();
    const serveArgs = ['--queue', redis.url, '--results', results, '--token', TOKEN, '--max-size', '128', '--max-steps', '400'];
    const [a, b] = await Promise.all([startServe(serveArgs), startServe(serveArgs)]);
    processes.push(a.process, b.process);
    apiA = a.url;
    apiB = b.url;
    await Promise.all(['w1', 'w2', 'w3'].map((name) => addWorker(name)));
  });

  afterAll(async () => {
    for (const p of processes) p.kill('SIGKILL');
    await Promise.all(processes.map((p) => p.exited));
    await redis?.stop();
    sv?.dispose();
    rmSync(work, { recursive: true, force: true });
  });

  it('serves the OpenAI client through the queue: create on one API node, poll and download on another', async () => {
    const clientA = new OpenAI({ apiKey: TOKEN, baseURL: `${apiA}/v1`, maxRetries: 0 });
    const clientB = new OpenAI({ apiKey: TOKEN, baseURL: `${apiB}/v1`, maxRetries: 0 });
    const created = await clientA.videos.create({ model: 'step-video-t2v', prompt: 'seed 11', seconds: '0.68', size: '32x32', seed: 11, steps: 2, format: 'y4m' } as unknown as VideoCreateParams);
    expect(created).toMatchObject({ object: 'video', status: 'queued', model: 'step-video-t2v', seconds: '0.68', size: '32x32' });
    let video = await clientB.videos.retrieve(created.id);
    const deadline = Date.now() + 60_000;
    while (video.status !== 'completed' && video.status !== 'failed' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      video = await clientB.videos.retrieve(created.id);
    }
    expect(video).toMatchObject({ id: created.id, status: 'completed', progress: 100, error: null });
    const bytes = Buffer.from(await (await clientB.videos.downloadContent(created.id)).arrayBuffer());
    expect(bytes.equals(await reference(11, short)), 'the queued job makes the single-process video').toBe(true);
    const listed: string[] = [];
    for await (const v of clientA.videos.list({ limit: 2 })) listed.push(v.id);
    expect(listed).toContain(created.id);
    await expect(new OpenAI({ apiKey: 'wrong', baseURL: `${apiA}/v1`, maxRetries: 0 }).videos.retrieve(created.id)).rejects.toBeInstanceOf(AuthenticationError);
    expect((await fetch(`${apiA}/v1/health`)).status, 'health needs no token').toBe(200);

    // The caption role runs on a worker too, and gives what the pipeline gives.
    const captions = await fetch(`${apiB}/caption-api`, { method: 'POST', headers: auth, body: JSON.stringify({ prompts: ['a cat'] }) });
    expect(captions.status).toBe(200);
    expect((await captions.arrayBuffer()).byteLength).toBeGreaterThan(1000);

    // So does the VAE role: latents in through one node, frames out equal to the pipeline's decoding.
    const latentsVideo = await sv.generate({ prompt: 'vae', ...short, seed: 1 });
    const latents = await latentsVideo.latents.toFloat32();
    const shape = [...latentsVideo.latents.shape];
    latentsVideo.dispose();
    const body = path.join(work, 'latents.safetensors');
    await writeSafetensors(body, { samples: { dtype: 'f32', shape, data: latents } });
    const decoded = await fetch(`${apiA}/vae-api`, { method: 'POST', headers: auth, body: readFileSync(body) });
    expect(decoded.status, await decoded.clone().text()).toBe(200);
    const reply = path.join(work, 'frames.safetensors');
    await writeFile(reply, Buffer.from(await decoded.arrayBuffer()));
    const direct = await sv.decodeLatents(latents, shape);
    expect(Buffer.from(((await readSafetensors(reply)).get('samples')!.data as Float32Array).buffer).equals(Buffer.from((direct.data as Float32Array).buffer))).toBe(true);
    expect(readdirSync(results).filter((f) => f.startsWith('.upload-') || f.startsWith('.reply-')), 'uploads and replies are removed').toEqual([]);

    expect(await clientA.videos.delete(created.id)).toEqual({ id: created.id, object: 'video.deleted', deleted: true });
    expect(readdirSync(results)).not.toContain(`${created.id}.y4m`);
  });

  it('runs many jobs over two API nodes and three workers; a worker killed mid-job: every job completes exactly once, right and whole', async () => {
    const jobs = await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const size = i === 0 ? long : short;
        const seed = 200 + i;
        const video = await submit(i % 2 === 0 ? apiA : apiB, { prompt: `seed ${seed}`, ...size, seed, format: 'y4m' });
        return { id: video.id, seed, size };
      }),
    );
    // Kill the worker running the long job once it is denoising.
    const victim = jobs[0]!;
    const deadline = Date.now() + 60_000;
    let running: VideoObject;
    do {
      await new Promise((resolve) => setTimeout(resolve, 50));
      running = await get(apiA, victim.id);
    } while (!(running.stepvideo.status === 'running' && running.progress >= 10) && Date.now() < deadline);
    expect(running.stepvideo.status).toBe('running');
    const killed = runnerOf(victim.id)!;
    expect(killed).toBeDefined();
    killed.kill('SIGKILL');
    await killed.exited;
    workers = workers.filter((w) => w !== killed);

    for (const job of jobs) {
      const video = await waitStatus(job.id === victim.id ? apiB : apiA, job.id, ['succeeded', 'failed', 'cancelled']);
      expect(video.stepvideo.status, `job ${job.seed}`).toBe('succeeded');
      expect((await content(apiB, job.id)).equals(await reference(job.seed, job.size)), `job ${job.seed}'s video`).toBe(true);
    }
    // The long job ran again on a surviving worker.
    expect(runnerOf(victim.id)).not.toBe(killed);
    expect(runnerOf(victim.id)!.stderr).toMatch(new RegExp(`job ${victim.id} started \\(attempt 2\\)`));
    const counts = completions();
    for (const job of jobs) expect(counts.get(job.id), `completions of job ${job.seed}`).toBe(1);
    // One file per job, no temporary file left in the shared folder.
    const files = readdirSync(results);
    for (const job of jobs) expect(files.filter((f) => f.includes(job.id)), `files of job ${job.seed}`).toEqual([`${job.id}.y4m`]);
    expect(files.filter((f) => f.includes('.tmp-'))).toEqual([]);
    await addWorker('w4');
  });

  it('sends a cancel to the worker running the job: it stops at once and takes the next job', async () => {
    const job = await submit(apiA, { prompt: 'cancel me', ...long, steps: 400, seed: 5, format: 'y4m' });
    let video: VideoObject;
    do {
      await new Promise((resolve) => setTimeout(resolve, 50));
      video = await get(apiB, job.id);
    } while (!(video.stepvideo.status === 'running' && video.progress >= 6));
    const runner = runnerOf(job.id)!;
    // Progress crosses processes: the worker's reports reach an API node's event stream.
    const stream = readEvents(apiA, job.id);
    await new Promise((resolve) => setTimeout(resolve, 600));
    const before = await get(apiB, job.id);
    const cancel = await fetch(`${apiB}/v1/videos/${job.id}/cancel`, { method: 'POST', headers: auth });
    expect(cancel.status).toBe(202);
    await runner.waitFor(new RegExp(`job ${job.id} failed: cancelled`), 30_000);
    const final = await waitStatus(apiA, job.id, ['cancelled', 'failed', 'succeeded'], 10_000);
    expect(final).toMatchObject({ status: 'failed', error: { code: 'cancelled' }, stepvideo: { status: 'cancelled' } });
    // Work counted, not time measured. One point of progress is about 4.7 of the 400 steps (denoising
    // spans points 5 to 90). Allowed: 2 points (about 9 steps) between the cancel and the stop, and
    // 2 more because the reading before the cancel may be one report (250 ms, about 8 steps) old.
    expect(final.progress - before.progress, `progress ${before.progress} at the cancel, ${final.progress} at the stop`).toBeLessThanOrEqual(4);
    const events = await stream;
    expect(events.filter((e) => e.event === 'progress' && e.data.stage === 'denoise').length, 'denoise progress events').toBeGreaterThan(0);
    // So do its live previews (every 5 steps by default), through Redis pub/sub.
    const previews = events.filter((e) => e.event === 'preview');
    expect(previews.length, 'preview events').toBeGreaterThan(0);
    expect(previews[0]!.data).toMatchObject({ id: job.id, total: 400 });
    expect(previews[0]!.data.image).toMatch(/^data:image\/png;base64,/);
    expect(events.at(-1)).toMatchObject({ event: 'end', data: { id: job.id, status: 'failed', stepvideo: { status: 'cancelled' } } });
    // Not retried, and the workers go on.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await get(apiA, job.id)).stepvideo.status).toBe('cancelled');
    const next = await submit(apiB, { prompt: 'seed 31', ...short, seed: 31, format: 'y4m' });
    await waitStatus(apiA, next.id, ['succeeded']);
    // A job cancelled while queued never runs.
    const queue = new Queue('videos', { connection: { host: '127.0.0.1', port: redis.port, password: redis.password }, prefix: 'stepvideo' });
    try {
      await queue.pause();
      const queued = await submit(apiA, { prompt: 'never', ...short, seed: 32 });
      expect((await (await fetch(`${apiA}/v1/videos/${queued.id}/cancel`, { method: 'POST', headers: auth })).json()) as VideoObject).toMatchObject({ stepvideo: { status: 'cancelled' } });
      await queue.resume();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect((await get(apiB, queued.id)).stepvideo.status).toBe('cancelled');
      expect(workers.some((w) => w.stderr.includes(`job ${queued.id} started`))).toBe(false);
    } finally {
      await queue.resume();
      await queue.close();
    }
  });

  it('fails a job with bad input once, with its error, and never retries it', async () => {
    // The API node allows 128 pixels, the workers 64: the worker refuses the job.
    const job = await submit(apiA, { prompt: 'too big for the workers', frames: 17, height: 96, width: 96, steps: 2 });
    const video = await waitStatus(apiB, job.id, ['failed', 'succeeded']);
    expect(video).toMatchObject({ status: 'failed', stepvideo: { status: 'failed' }, error: { code: 'invalid_field' } });
    expect(video.error!.message).toMatch(/'height' must be in \[1, 64\]/);
    // Jobs from elsewhere (another version, a hand-made entry) are checked too, however many attempts they allow.
    const queue = new Queue('videos', { connection: { host: '127.0.0.1', port: redis.port, password: redis.password }, prefix: 'stepvideo' });
    try {
      const id = randomUUID();
      await queue.add('video', { request: { prompt: 42, format: 'mp4', crop: true } }, { jobId: id, attempts: 5 });
      const hostileId = '../../escape';
      await queue.add('video', { request: { prompt: 'x', format: 'mp4', crop: true } }, { jobId: hostileId, attempts: 5 });
      const failed = await waitStatus(apiA, id, ['failed', 'succeeded']);
      expect(failed.error).toMatchObject({ code: 'invalid_field' });
      await new Promise((resolve) => setTimeout(resolve, 2500));
      for (const jobId of [id, hostileId, job.id]) {
        const entry = await queue.getJob(jobId);
        expect(await entry!.getState(), jobId).toBe('failed');
        expect(entry!.attemptsMade, `attempts of ${jobId}`).toBe(1);
      }
      expect((await queue.getJob(hostileId))!.failedReason).toMatch(/^invalid_job: /);
      expect((await fetch(`${apiA}/v1/videos/${encodeURIComponent(hostileId)}`, { headers: auth })).status).toBe(404);
    } finally {
      await queue.close();
    }
  });

  it('answers 429 with Retry-After when the queue is full', async () => {
    // An API node on its own queue with room for two and no worker.
    const full = await startServe(['--queue', redis.url, '--queue-prefix', 'full', '--results', results, '--token', TOKEN, '--max-queue', '2']);
    processes.push(full.process);
    await submit(full.url, { prompt: 'one', ...short });
    await submit(full.url, { prompt: 'two', ...short });
    const response = await post(full.url, { prompt: 'three', ...short });
    expect(response.status).toBe(429);
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await response.json()) as { error: { code: string; type: string } }).error).toMatchObject({ code: 'queue_full', type: 'invalid_request_error' });
    const client = new OpenAI({ apiKey: TOKEN, baseURL: `${full.url}/v1`, maxRetries: 0 });
    await expect(client.videos.create({ prompt: 'four' })).rejects.toBeInstanceOf(RateLimitError);
    // No worker takes caption requests on this queue: a 503 saying so, not a wait to the timeout.
    const captions = await fetch(`${full.url}/caption-api`, { method: 'POST', headers: auth, body: JSON.stringify({ prompts: ['a cat'] }) });
    expect(captions.status).toBe(503);
    expect(((await captions.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'no_worker', message: expect.stringMatching(/--roles caption/) });
    full.process.kill();
  });

  it('carries on after Redis restarts: API nodes and workers reconnect, jobs before and after complete', async () => {
    const before = await submit(apiA, { prompt: 'seed 41', ...short, seed: 41, format: 'y4m' });
    await waitStatus(apiA, before.id, ['succeeded']);
    const down = redis.restart(1500);
    // While Redis is down an API node answers 503 with Retry-After, not a hang or a crash.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const during = await fetch(`${apiB}/v1/videos/${before.id}`, { headers: auth });
    expect([503, 200]).toContain(during.status);
    if (during.status === 503) expect(during.headers.get('retry-after')).toBeTruthy();
    await down;
    const after: { id: string; seed: number }[] = [];
    for (const [i, api] of [apiA, apiB, apiA].entries()) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const response = await post(api, { prompt: `seed ${50 + i}`, ...short, seed: 50 + i, format: 'y4m' });
        if (response.status === 200) {
          after.push({ id: ((await response.json()) as VideoObject).id, seed: 50 + i });
          break;
        }
        expect(response.status).toBe(503);
        if (Date.now() > deadline) throw new Error('the API node did not reconnect within 20 s');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    for (const job of after) {
      await waitStatus(apiB, job.id, ['succeeded'], 60_000);
      expect((await content(apiA, job.id)).equals(await reference(job.seed, short))).toBe(true);
    }
    expect((await get(apiB, before.id)).stepvideo.status, 'the job from before the restart is still there').toBe('succeeded');
    expect(workers.every((w) => w.running)).toBe(true);
  });

  it('hands the running job back on SIGTERM: the worker exits 0 and another worker completes the job', async () => {
    const job = await submit(apiB, { prompt: 'seed 61', ...long, seed: 61, format: 'y4m' });
    let video: VideoObject;
    do {
      await new Promise((resolve) => setTimeout(resolve, 50));
      video = await get(apiA, job.id);
    } while (!(video.stepvideo.status === 'running' && video.progress >= 10));
    const runner = runnerOf(job.id)!;
    runner.kill('SIGTERM');
    expect(await runner.exited).toBe(0);
    expect(runner.stderr).toMatch(new RegExp(`job ${job.id} handed back to the queue`));
    workers = workers.filter((w) => w !== runner);
    await waitStatus(apiA, job.id, ['succeeded']);
    expect(runnerOf(job.id)).not.toBe(runner);
    expect((await content(apiB, job.id)).equals(await reference(61, long))).toBe(true);
    expect(completions().get(job.id)).toBe(1);
  });
});

describe.skipIf(!run)('StepVideoWorker in process (real Redis)', () => {
  it('frees the memory of a cancelled job at once, and finishes its job within the grace period on stop', async () => {
    const redis = await RedisServer.start();
    const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-worker-'));
    const sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
    const { QueueBackend } = await import('../../lib/server/queue/client.js');
    const { DEFAULT_LIMITS } = await import('../../lib/server/requests.js');
    // maxFinished 0: a new job's submission forgets every finished one, with its video.
    const api = new QueueBackend(redis.url, { ...DEFAULT_LIMITS, maxFinished: 0 });
    const worker = new StepVideoWorker(sv, { queue: redis.url, resultsDir: work, stallTimeoutMs: 5000, limits: { maxSteps: 400 } });
    try {
      await api.open(work);
      await Device.cpu.synchronize();
      const baseline = Device.cpu.memory().bytesInUse;
      await worker.start();
      const job = await api.jobs.submit({ prompt: 'long', ...long, steps: 400, seed: 1, format: 'y4m', crop: true });
      let peak = 0;
      const deadline = Date.now() + 30_000;
      for (;;) {
        const view = (await api.jobs.get(job.id))!;
        if (view.status === 'running' && peak > 0) break;
        if (view.status !== 'queued' && view.status !== 'running') throw new Error(`the job ended before the cancel: ${view.status} ${JSON.stringify(view.error)}`);
        if (Date.now() > deadline) throw new Error('the job did not start');
        peak = Math.max(peak, Device.cpu.memory().bytesInUse - baseline);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await api.jobs.cancel(job.id);
      const stopDeadline = Date.now() + 5000;
      while (worker.running > 0 && Date.now() < stopDeadline) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(worker.running).toBe(0);
      await Device.cpu.synchronize();
      expect(Device.cpu.memory().bytesInUse, `memory after the cancel (the running job held ${peak} more bytes)`).toBe(baseline);

      // stop() with a long grace lets the running job finish.
      const finishing = await api.jobs.submit({ prompt: 'finish', ...long, seed: 2, format: 'y4m', crop: true });
      while ((await api.jobs.get(finishing.id))!.status !== 'running') await new Promise((resolve) => setTimeout(resolve, 20));
      await worker.stop(60_000);
      expect((await api.jobs.get(finishing.id))!.status).toBe('succeeded');
      const video = (await api.jobs.get(finishing.id))!.result!.path;
      expect(existsSync(video)).toBe(true);
      await api.jobs.submit({ prompt: 'later', ...short, format: 'y4m', crop: true });
      const forgetDeadline = Date.now() + 5000;
      while ((await api.jobs.get(finishing.id)) !== undefined && Date.now() < forgetDeadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await api.jobs.get(finishing.id)).toBeUndefined();
      expect(await api.jobs.get(job.id)).toBeUndefined();
      expect(existsSync(video)).toBe(false);
    } finally {
      await worker.stop(0).catch(() => undefined);
      await api.close();
      sv.dispose();
      await redis.stop();
      rmSync(work, { recursive: true, force: true });
    }
  });
});
