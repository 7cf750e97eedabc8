// `stepvideo serve` in process with the built-in model at a very small size, on loopback: many
// concurrent clients (every job finishes or is cancelled as asked, no result lost or swapped, the
// server stays up), server-sent progress, the caption and VAE endpoints against the pipeline's own
// results, and 4xx answers with a message for every kind of malformed request.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { type StepVideoServer, createStepVideoServer } from '../../lib/server/index.js';
import { testCacheDir } from '../helpers/pipeline.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-server-'));
let sv: StepVideo;
let server: StepVideoServer;
let url: string;
let baseline: number;

beforeAll(async () => {
  sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
  await Device.cpu.synchronize();
  baseline = Device.cpu.memory().bytesInUse;
  server = createStepVideoServer(sv, { port: 0, limits: { maxFrames: 34, maxSize: 64, maxSteps: 200, maxQueued: 64 } });
  url = await server.listen();
});

afterAll(async () => {
  await server?.close();
  sv?.dispose();
  rmSync(work, { recursive: true, force: true });
});

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

/** Reads a job's event stream to its end (the server closes it after `end`). */
async function readEvents(id: string, onEvent?: (event: SseEvent) => void): Promise<SseEvent[]> {
  const response = await fetch(`${url}/v1/videos/${id}/events`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const bytes of response.body!) {
    buffer += decoder.decode(bytes as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const lines = block.split('\n').filter((l) => !l.startsWith(':'));
      if (lines.length === 0) continue;
      const event = lines.find((l) => l.startsWith('event: '))!.slice(7);
      const data = JSON.parse(lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n')) as Record<string, unknown>;
      events.push({ event, data });
      onEvent?.({ event, data });
    }
  }
  return events;
}

async function submit(body: Record<string, unknown>): Promise<{ id: string; status: string }> {
  const response = await fetch(`${url}/v1/videos`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as { id: string; status: string };
}

/** The job's own status (queued, running, succeeded, failed, cancelled) from a stream's `end` event. */
function nativeStatus(events: SseEvent[]): string {
  const end = events.at(-1)!;
  expect(end.event).toBe('end');
  return (end.data.stepvideo as { status: string }).status;
}

async function download(id: string): Promise<Buffer> {
  const response = await fetch(`${url}/v1/videos/${id}/content`);
  expect(response.status).toBe(200);
  return Buffer.from(await response.arrayBuffer());
}

const tiny = { frames: 17, height: 32, width: 32, steps: 2 };

describe('stepvideo serve (loopback, built-in model)', () => {
  it('runs many concurrent clients: each job finishes or is cancelled as asked, no result lost or swapped', async () => {
    const clients = 10;
    const outcomes = await Promise.all(
      Array.from({ length: clients }, async (_, i) => {
        // Clients i and i + 5 ask for the same seed and format: their files must be identical.
        const seed = 100 + (i % 5);
        const format = i % 5 < 3 ? 'mp4' : 'y4m';
        const prompt = `client ${i % 5}`;
        if (i === 4) {
          // Cancelled while queued (or at the latest just after it starts).
          const job = await submit({ prompt, ...tiny, seed, format });
          const cancel = await fetch(`${url}/v1/videos/${job.id}/cancel`, { method: 'POST' });
          expect([202, 409]).toContain(cancel.status);
          const events = await readEvents(job.id);
          return { i, seed, format, status: nativeStatus(events), id: job.id, asked: 'cancel' };
        }
        if (i === 9) {
          // Cancelled while running: a long job, cancelled at its first denoising progress.
          const job = await submit({ prompt, ...tiny, steps: 200, seed, format });
          let cancelledAtStep: number | undefined;
          const events = await readEvents(job.id, (e) => {
            if (e.event === 'progress' && e.data.stage === 'denoise' && cancelledAtStep === undefined) {
              cancelledAtStep = e.data.step as number;
              void fetch(`${url}/v1/videos/${job.id}/cancel`, { method: 'POST' });
            }
          });
          // The cancel stopped the job within a few of its 200 steps (work counted, not time measured).
          const steps = events.filter((e) => e.event === 'progress' && e.data.stage === 'denoise').map((e) => e.data.step as number);
          expect(cancelledAtStep).toBeDefined();
          expect(Math.max(...steps), `steps run after the cancel at step ${cancelledAtStep}`).toBeLessThanOrEqual(cancelledAtStep! + 3);
          return { i, seed, format, status: nativeStatus(events), id: job.id, asked: 'cancel' };
        }
        const job = await submit({ prompt, ...tiny, seed, format });
        expect(['queued', 'running']).toContain(job.status);
        const events = await readEvents(job.id);
        expect(events.at(-1)!.event).toBe('end');
        const steps = events.filter((e) => e.event === 'progress' && e.data.stage === 'denoise' && e.data.block === undefined).map((e) => e.data.step);
        expect(steps).toEqual([1, 2]);
        const final = events.filter((e) => e.event === 'status').at(-1)!.data;
        expect(final).toMatchObject({ id: job.id, object: 'video', status: 'completed', progress: 100, prompt, size: '32x32', seconds: '0.68', stepvideo: { status: 'succeeded', seed: String(seed), format } });
        return { i, seed, format, status: nativeStatus(events), id: job.id, asked: 'result', bytes: await download(job.id) };
      }),
    );

    for (const o of outcomes) {
      if (o.asked === 'cancel') expect(o.status, `client ${o.i}`).toBe('cancelled');
      else expect(o.status, `client ${o.i}`).toBe('succeeded');
    }
    const results = outcomes.filter((o) => o.bytes !== undefined);
    expect(results).toHaveLength(8);
    for (const a of results) {
      for (const b of results) {
        if (a.i >= b.i || a.format !== b.format) continue;
        expect(a.bytes!.equals(b.bytes!), `clients ${a.i} and ${b.i}`).toBe(a.seed === b.seed);
      }
    }
    // Each file is the one its request asks for: the pipeline itself makes the same bytes.
    const direct = path.join(work, 'direct.y4m');
    await (await sv.generate({ prompt: 'client 3', ...tiny, seed: 103 })).save(direct);
    expect(results.find((o) => o.i === 3)!.bytes!.equals(readFileSync(direct))).toBe(true);

    // A cancelled job has no content; the server is still up and idle.
    const cancelled = await fetch(`${url}/v1/videos/${outcomes[9]!.id}/content`);
    expect(cancelled.status).toBe(409);
    expect(((await cancelled.json()) as { error: { message: string } }).error.message).toMatch(/cancelled/);
    const health = (await (await fetch(`${url}/v1/health`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({ status: 'ok', mode: 'single-process', running: 0, waiting: 0 });
    const list = (await (await fetch(`${url}/v1/videos?limit=100`)).json()) as { object: string; data: Array<{ id: string }> };
    expect(list.object).toBe('list');
    expect(list.data.length).toBeGreaterThanOrEqual(clients);
    // DELETE forgets a job and its file.
    const deleted = await fetch(`${url}/v1/videos/${outcomes[0]!.id}`, { method: 'DELETE' });
    expect(await deleted.json()).toEqual({ id: outcomes[0]!.id, object: 'video.deleted', deleted: true });
    expect((await fetch(`${url}/v1/videos/${outcomes[0]!.id}`)).status).toBe(404);
    await Device.cpu.synchronize();
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it('answers the caption API with safetensors equal to the pipeline’s captions', async () => {
    const response = await fetch(`${url}/caption-api`, { method: 'POST', body: JSON.stringify({ prompts: ['a cat', '一只猫'] }) });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/octet-stream');
    const file = path.join(work, 'captions.safetensors');
    await writeFile(file, Buffer.from(await response.arrayBuffer()));
    const tensors = await readSafetensors(file);
    expect(tensors.get('y')!.shape).toEqual([2, 320, 128]);
    expect(tensors.get('y_mask')).toMatchObject({ dtype: 'i64', shape: [2, 397] });
    expect(tensors.get('clip_embedding')!.shape).toEqual([2, 77, 64]);
    const direct = await sv.encodeCaptions(['a cat', '一只猫']);
    expect(Buffer.from((tensors.get('y')!.data as Float32Array).buffer).equals(Buffer.from((direct.y.data as Float32Array).buffer))).toBe(true);
  });

  it('answers the VAE API: latents in, frames out, equal to the pipeline’s decoding', async () => {
    const video = await sv.generate({ prompt: 'vae', ...tiny, seed: 1 });
    const latents = await video.latents.toFloat32();
    const shape = [...video.latents.shape];
    video.dispose();
    const body = path.join(work, 'latents.safetensors');
    await writeSafetensors(body, { samples: { dtype: 'f32', shape, data: latents } });
    const response = await fetch(`${url}/vae-api`, { method: 'POST', body: readFileSync(body) });
    expect(response.status, await response.clone().text()).toBe(200);
    const reply = path.join(work, 'frames.safetensors');
    await writeFile(reply, Buffer.from(await response.arrayBuffer()));
    const frames = (await readSafetensors(reply)).get('samples')!;
    expect(frames.shape).toEqual([1, 17, 3, 32, 32]);
    const direct = await sv.decodeLatents(latents, shape);
    expect(Buffer.from((frames.data as Float32Array).buffer).equals(Buffer.from((direct.data as Float32Array).buffer))).toBe(true);
  });

  it('answers every malformed request with a 4xx and a message, and stays up', async () => {
    const job = await submit({ prompt: 'busy', ...tiny, steps: 100, seed: 1 });
    const notSafetensors = Buffer.from('definitely not safetensors');
    const noSamples = path.join(work, 'nosamples.safetensors');
    await writeSafetensors(noSamples, { other: { dtype: 'f32', shape: [1], data: new Float32Array(1) } });
    const cases: Array<{ method: string; path: string; body?: string | Buffer; status: number; code: RegExp; message?: RegExp }> = [
      { method: 'POST', path: '/v1/videos', body: '{bad', status: 400, code: /bad_json/ },
      { method: 'POST', path: '/v1/videos', body: '[1, 2]', status: 400, code: /bad_request/ },
      { method: 'POST', path: '/v1/videos', body: '{"prompt": 5}', status: 400, code: /invalid_field/, message: /'prompt' must be a string/ },
      { method: 'POST', path: '/v1/videos', body: '{"prompt": "a", "height": 4096}', status: 400, code: /invalid_field/, message: /'height' must be in \[1, 64\]/ },
      { method: 'POST', path: '/v1/videos', body: '{"prompt": "a", "frames": 35}', status: 400, code: /invalid_field/, message: /'frames'/ },
      { method: 'POST', path: '/v1/videos', body: '{"prompt": "a", "format": "gif"}', status: 400, code: /invalid_field/ },
      { method: 'POST', path: '/v1/videos', body: '{"prompt": "a", "speed": 2}', status: 400, code: /unknown_parameter/ },
      { method: 'POST', path: '/v1/videos', body: 'prompt a cat', status: 415, code: /unsupported_media_type/ },
      { method: 'POST', path: '/v1/videos', body: JSON.stringify({ prompt: 'x'.repeat(100_000) }), status: 413, code: /body_too_large/ },
      { method: 'GET', path: '/v1/videos/no-such-job', status: 404, code: /unknown_job/ },
      { method: 'GET', path: '/v1/videos/no-such-job/events', status: 404, code: /unknown_job/ },
      { method: 'POST', path: '/v1/videos/no-such-job/cancel', status: 404, code: /unknown_job/ },
      { method: 'GET', path: `/v1/videos/${job.id}/content`, status: 409, code: /not_ready/ },
      { method: 'GET', path: `/v1/videos/${job.id}/nothing`, status: 404, code: /not_found/ },
      { method: 'GET', path: '/v2/anything', status: 404, code: /not_found/ },
      { method: 'PUT', path: '/v1/videos', body: '{}', status: 405, code: /method_not_allowed/ },
      { method: 'DELETE', path: '/v1/health', status: 405, code: /method_not_allowed/ },
      { method: 'GET', path: `/v1/videos/${job.id}/cancel`, status: 405, code: /method_not_allowed/ },
      { method: 'POST', path: '/caption-api', body: '{"prompts": "a cat"}', status: 400, code: /invalid_field/ },
      { method: 'POST', path: '/caption-api', body: JSON.stringify({ prompts: Array(20).fill('a') }), status: 400, code: /invalid_field/ },
      { method: 'POST', path: '/vae-api', body: notSafetensors, status: 400, code: /bad_safetensors/ },
      { method: 'POST', path: '/vae-api', body: readFileSync(noSamples), status: 400, code: /missing_tensor/ },
      { method: 'POST', path: '/vae-api', body: Buffer.alloc(65 * 1024 * 1024), status: 413, code: /body_too_large/ },
    ];
    await Promise.all(
      cases.map(async (c) => {
        const json = c.path === '/v1/videos' && c.method === 'POST' && c.status !== 415 ? { headers: { 'content-type': 'application/json' } } : {};
        const response = await fetch(`${url}${c.path}`, { method: c.method, ...json, ...(c.body !== undefined ? { body: c.body } : {}) });
        const what = `${c.method} ${c.path}`;
        expect(response.status, what).toBe(c.status);
        const body = (await response.json()) as { error: { status: number; code: string; message: string } };
        expect(body.error.status, what).toBe(c.status);
        expect(body.error.code, what).toMatch(c.code);
        expect(body.error.message.length, what).toBeGreaterThan(5);
        if (c.message) expect(body.error.message, what).toMatch(c.message);
        if (c.status === 405) expect(response.headers.get('allow'), what).toBeTruthy();
      }),
    );
    // A request that is not HTTP at all.
    const raw = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(new URL(url).port), '127.0.0.1', () => socket.write('NONSENSE\r\n\r\n'));
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
    });
    expect(raw).toMatch(/^HTTP\/1\.1 400/);

    const cancel = await fetch(`${url}/v1/videos/${job.id}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(202);
    const events = await readEvents(job.id);
    expect(nativeStatus(events)).toBe('cancelled');
    expect(events.at(-1)!.data.status).toBe('failed');
    const again = await fetch(`${url}/v1/videos/${job.id}/cancel`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect((await fetch(`${url}/v1/health`)).status).toBe(200);
  });
});
