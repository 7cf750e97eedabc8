// The OpenAI Videos API layer (lib/server/openai.ts): create bodies exactly as the `openai` SDK
// builds them (its own multipart, through a fake fetch, no server), JSON bodies, the mapping of
// seconds/size/model onto the native request, every refusal with its code and param, jobs shown as
// the SDK's Video, list pages the SDK's own iterator follows, and the error body the SDK parses.
import OpenAI, { BadRequestError, InternalServerError, toFile } from 'openai';
import type { Video, VideoCreateParams } from 'openai/resources/videos';
import { describe, expect, it } from 'vitest';

import type { PipelineProgress } from '../../lib/pipeline/progress.js';
import { HttpError, errorBody } from '../../lib/server/http.js';
import {
  CREATE_FIELDS,
  type JobLike,
  MODEL_IDS,
  contentVariant,
  deletedVideo,
  framesForSeconds,
  listVideos,
  parseCreateVideo,
  presetForModel,
  progressPercent,
  secondsForFrames,
  toOpenAIVideo,
} from '../../lib/server/openai.js';
import { DEFAULT_LIMITS, type VideoJobRequest, parseVideoRequest } from '../../lib/server/requests.js';

const limits = DEFAULT_LIMITS;
const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/** A fake `fetch` for the SDK: records each API call and answers with `reply(url, init)`. */
function fakeClient(reply: (url: URL, init: RequestInit) => Response | Promise<Response>) {
  const calls: { url: URL; init: RequestInit }[] = [];
  const client = new OpenAI({
    apiKey: 'k',
    baseURL: 'http://127.0.0.1:1/v1',
    maxRetries: 0,
    fetch: async (input: string | URL | Request, init?: RequestInit) => {
      const url = new URL(String(input));
      // The SDK probes FormData support with fetch('data:,') once.
      if (url.protocol === 'data:') return new Response('');
      calls.push({ url, init: init ?? {} });
      return reply(url, init ?? {});
    },
  });
  return { client, calls };
}

const jsonReply = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });

/** The multipart body videos.create() sends for `params`, as the server would read it. */
async function sdkCreateBody(params: Record<string, unknown>): Promise<{ contentType: string; body: Buffer }> {
  const { client, calls } = fakeClient(() => jsonReply(toOpenAIVideo(job('x'))));
  // Extra (Step-Video) fields go in the params object itself: the SDK writes every key as a form field.
  await client.videos.create(params as unknown as VideoCreateParams);
  const { url, init } = calls[0]!;
  expect(url.pathname).toBe('/v1/videos');
  expect(init.method).toBe('POST');
  const request = new Request('http://x', { method: 'POST', body: init.body ?? null, headers: init.headers ?? {} });
  return { contentType: request.headers.get('content-type')!, body: Buffer.from(await request.arrayBuffer()) };
}

async function sdkParse(params: Record<string, unknown>): Promise<VideoJobRequest> {
  const { contentType, body } = await sdkCreateBody(params);
  return parseCreateVideo(contentType, body, limits);
}

/** The HttpError a promise (or call) rejects with. */
async function refusal(run: () => unknown): Promise<HttpError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(HttpError);
    return error as HttpError;
  }
  throw new Error('expected a refusal');
}

async function expectRefusal(run: () => unknown, status: number, code: string, param: string | undefined, message?: RegExp): Promise<HttpError> {
  const error = await refusal(run);
  expect({ status: error.status, code: error.code, param: error.param }).toEqual({ status, code, param });
  if (message) expect(error.message).toMatch(message);
  return error;
}

const parseJson = (body: unknown, contentType: string | undefined = 'application/json') => parseCreateVideo(contentType, json(body), limits);

function job(id: string, fields: Partial<JobLike> = {}, request: Record<string, unknown> = { prompt: 'a cat' }): JobLike {
  return { id, request: parseVideoRequest(request, limits), status: 'queued', createdAt: new Date(1_700_000_000_000), ...fields };
}

const SDK_VIDEO_KEYS = ['completed_at', 'created_at', 'error', 'expires_at', 'id', 'model', 'object', 'progress', 'prompt', 'remixed_from_video_id', 'seconds', 'size', 'status'];

describe('create: the body the openai SDK sends (multipart/form-data)', () => {
  it('maps model, seconds, size and seed', async () => {
    const { contentType, body } = await sdkCreateBody({ model: 'step-video-t2v', prompt: 'a red fox in snow', seconds: '4', size: '992x544', seed: 7 });
    expect(contentType).toMatch(/^multipart\/form-data; boundary=/);
    const request = await parseCreateVideo(contentType, body, limits);
    expect(request).toEqual({
      prompt: 'a red fox in snow',
      frames: 100,
      width: 992,
      height: 544,
      seed: 7,
      preset: 'base',
      format: 'mp4',
      crop: true,
      model: 'step-video-t2v',
      seconds: '4',
      sizeText: '992x544',
    });
  });

  it('carries every Step-Video knob as an extra field, snake_case or camelCase, converted from text', async () => {
    const snake = await sdkParse({ prompt: 'p', negative_prompt: 'blurry', steps: 30, cfg_scale: 7.5, time_shift: 13, seed: 123, format: 'y4m', crop: false, frames: 34, height: 256, width: 448 });
    expect(snake).toEqual({ prompt: 'p', negativePrompt: 'blurry', steps: 30, cfgScale: 7.5, timeShift: 13, seed: 123, format: 'y4m', crop: false, frames: 34, height: 256, width: 448, model: 'step-video-t2v' });
    const camel = await sdkParse({ prompt: 'p', negativePrompt: 'blurry', cfgScale: 7.5, timeShift: 13, preset: 'turbo', crop: true });
    expect(camel).toEqual({ prompt: 'p', negativePrompt: 'blurry', cfgScale: 7.5, timeShift: 13, preset: 'turbo', format: 'mp4', crop: true, model: 'step-video-t2v-turbo' });
  });

  it('leaves text fields as text even when they look like numbers', async () => {
    const request = await sdkParse({ prompt: '42', negative_prompt: 'true' });
    expect(request.prompt).toBe('42');
    expect(request.negativePrompt).toBe('true');
  });

  it('keeps a non-numeric or non-boolean text as text so validation names the field', async () => {
    await expectRefusal(() => sdkParse({ prompt: 'p', seed: 'abc' }), 400, 'invalid_field', 'seed', /'seed' must be an integer \(got "abc"\)/);
    await expectRefusal(() => sdkParse({ prompt: 'p', steps: '1e3' }), 400, 'invalid_field', 'steps', /'steps'/);
    await expectRefusal(() => sdkParse({ prompt: 'p', crop: 'yes' }), 400, 'invalid_field', 'crop', /'crop' must be true or false/);
    await expectRefusal(() => sdkParse({ prompt: 'p', cfg_scale: 'high' }), 400, 'invalid_field', 'cfg_scale', /^'cfg_scale' must be a number/);
    await expectRefusal(() => sdkParse({ prompt: 'p', seconds: 'four' }), 400, 'invalid_field', 'seconds', /positive number/);
  });

  it('refuses input_reference, as a file or as the SDK-encoded reference object', async () => {
    const file = await toFile(Buffer.from([0xff, 0xd8, 0xff]), 'ref.jpg', { type: 'image/jpeg' });
    await expectRefusal(() => sdkParse({ prompt: 'p', input_reference: file }), 400, 'unsupported_parameter', 'input_reference', /text only/);
    await expectRefusal(() => sdkParse({ prompt: 'p', input_reference: { image_url: 'https://x/y.png' } }), 400, 'unsupported_parameter', 'input_reference');
  });

  it('refuses a file part for any other field', async () => {
    const file = await toFile(Buffer.from('a cat'), 'prompt.txt', { type: 'text/plain' });
    await expectRefusal(() => sdkParse({ prompt: file }), 400, 'invalid_field', 'prompt', /not a file/);
  });

  it('refuses a field sent twice and a malformed multipart body', async () => {
    const form = new FormData();
    form.append('prompt', 'p');
    form.append('seed', '1');
    form.append('seed', '2');
    const request = new Request('http://x', { method: 'POST', body: form });
    await expectRefusal(async () => parseCreateVideo(request.headers.get('content-type')!, Buffer.from(await request.arrayBuffer()), limits), 400, 'invalid_field', 'seed', /more than once/);
    await expectRefusal(() => parseCreateVideo('multipart/form-data; boundary=abc', Buffer.from('not multipart'), limits), 400, 'bad_multipart', undefined);
    await expectRefusal(() => parseCreateVideo('multipart/form-data', Buffer.from('x'), limits), 400, 'bad_multipart', undefined);
  });

  it('refuses unknown fields naming the first, listing the known ones', async () => {
    const error = await expectRefusal(() => sdkParse({ prompt: 'p', fps: 30, quality: 'hd' }), 400, 'unknown_parameter', 'fps', /'fps', 'quality'/);
    for (const name of ['prompt', 'model', 'seconds', 'size', 'cfg_scale', 'cfgScale', 'negative_prompt', 'frames']) expect(error.message).toContain(name);
  });
});

describe('create: JSON bodies', () => {
  it('accepts the native body unchanged, with or without a content type', async () => {
    const native = { prompt: 'a cat', negativePrompt: 'n', frames: 51, height: 256, width: 256, steps: 10, cfgScale: 5, timeShift: 7, seed: 9, preset: 'turbo', format: 'y4m', crop: false };
    const expected = { ...parseVideoRequest(native, limits), model: 'step-video-t2v-turbo' };
    expect(await parseJson(native)).toEqual(expected);
    expect(await parseJson(native, undefined)).toEqual(expected);
    expect(await parseJson(native, 'application/json; charset=utf-8')).toEqual(expected);
    expect(await parseJson(native, 'Application/JSON')).toEqual(expected);
  });

  it('takes seconds as a number or a string and reports it as text', async () => {
    expect(await parseJson({ prompt: 'p', seconds: 2 })).toMatchObject({ frames: 50, seconds: '2' });
    expect(await parseJson({ prompt: 'p', seconds: '2.5' })).toMatchObject({ frames: 62, seconds: '2.5' });
  });

  it('reads a JSON null as not given', async () => {
    expect(await parseJson({ prompt: 'p', size: null, seed: null, model: null })).toEqual({ prompt: 'p', format: 'mp4', crop: true, model: 'step-video-t2v' });
  });

  it('refuses other content types with 415 and bad JSON with 400', async () => {
    await expectRefusal(() => parseCreateVideo('text/plain', json({ prompt: 'p' }), limits), 415, 'unsupported_media_type', undefined, /multipart\/form-data or application\/json/);
    await expectRefusal(() => parseCreateVideo('application/x-www-form-urlencoded', Buffer.from('prompt=p'), limits), 415, 'unsupported_media_type', undefined);
    await expectRefusal(() => parseCreateVideo('application/json', Buffer.from('{'), limits), 400, 'bad_json', undefined);
    await expectRefusal(() => parseCreateVideo(undefined, Buffer.alloc(0), limits), 400, 'bad_json', undefined);
    await expectRefusal(() => parseJson(['p']), 400, 'bad_request', undefined);
  });

  it('refuses input_reference and unknown fields in JSON too', async () => {
    await expectRefusal(() => parseJson({ prompt: 'p', input_reference: { file_id: 'f' } }), 400, 'unsupported_parameter', 'input_reference');
    await expectRefusal(() => parseJson({ prompt: 'p', n: 2 }), 400, 'unknown_parameter', 'n');
  });

  it('names a missing or empty prompt', async () => {
    await expectRefusal(() => parseJson({ seconds: '4' }), 400, 'invalid_field', 'prompt', /'prompt' is required/);
    await expectRefusal(() => parseJson({ prompt: '  ' }), 400, 'invalid_field', 'prompt', /must not be empty/);
  });
});

describe('create: mapping onto the native request', () => {
  it('seconds → frames = floor(seconds × 25), with no further flooring here', () => {
    expect(framesForSeconds(4)).toBe(100);
    expect(framesForSeconds(8.16)).toBe(204);
    expect(framesForSeconds(4.6)).toBe(115); // 114.99999… in binary
    expect(framesForSeconds(1.16)).toBe(29);
    expect(framesForSeconds(0.04)).toBe(1);
    expect(framesForSeconds(0.05)).toBe(1);
    expect(framesForSeconds(0.039)).toBe(0);
    // Every two-decimal text up to 10 s maps exactly.
    for (let k = 1; k <= 1000; k++) expect(framesForSeconds(Number((k / 100).toFixed(2)))).toBe(Math.floor(k / 4));
    expect(secondsForFrames(204)).toBe('8.16');
    expect(secondsForFrames(100)).toBe('4');
    expect(secondsForFrames(17)).toBe('0.68');
  });

  it('refuses seconds outside 1..maxFrames frames, naming the rule and the largest value', async () => {
    await expectRefusal(() => parseJson({ prompt: 'p', seconds: '8.2' }), 400, 'invalid_field', 'seconds', /205 frames.*floor\(seconds × 25\).*8\.16 seconds/);
    await expectRefusal(() => parseJson({ prompt: 'p', seconds: '12' }), 400, 'invalid_field', 'seconds', /8\.16/);
    await expectRefusal(() => parseJson({ prompt: 'p', seconds: '0.01' }), 400, 'invalid_field', 'seconds', /0 frames/);
    expect((await parseJson({ prompt: 'p', seconds: '8.16' })).frames).toBe(204);
    expect((await parseCreateVideo('application/json', json({ prompt: 'p', seconds: '2' }), { ...limits, maxFrames: 68 })).frames).toBe(50);
    await expectRefusal(() => parseCreateVideo('application/json', json({ prompt: 'p', seconds: '4' }), { ...limits, maxFrames: 68 }), 400, 'invalid_field', 'seconds', /2\.72 seconds/);
    for (const seconds of [0, -1, '0', '-2', 'abc', '', true, [4], {}]) {
      await expectRefusal(() => parseJson({ prompt: 'p', seconds }), 400, 'invalid_field', 'seconds');
    }
  });

  it("size 'WIDTHxHEIGHT' → width and height", async () => {
    expect(await parseJson({ prompt: 'p', size: '992x544' })).toMatchObject({ width: 992, height: 544, sizeText: '992x544' });
    expect(await parseJson({ prompt: 'p', size: '544x992' })).toMatchObject({ width: 544, height: 992 });
    expect(await parseJson({ prompt: 'p', size: '100x50' })).toMatchObject({ width: 100, height: 50 }); // the pipeline floors to 16
    for (const size of ['992X544', '992x', 'x544', '0x544', '992x0', '-1x5', '9.5x5', 'big', 992, ' 992x544']) {
      await expectRefusal(() => parseJson({ prompt: 'p', size }), 400, 'invalid_field', 'size', /WIDTHxHEIGHT/);
    }
    await expectRefusal(() => parseJson({ prompt: 'p', size: '2048x544' }), 400, 'invalid_field', 'size', /^'size' is out of range: 'width' must be in \[1, 1024\]/);
  });

  it('model → preset: turbo sets preset turbo unless preset is given; a conflicting preset is refused', async () => {
    expect(MODEL_IDS).toEqual(['step-video-t2v', 'step-video-t2v-turbo']);
    expect(presetForModel(undefined)).toBe('base');
    expect(await parseJson({ prompt: 'p', model: 'step-video-t2v-turbo' })).toMatchObject({ preset: 'turbo', model: 'step-video-t2v-turbo' });
    expect(await parseJson({ prompt: 'p', model: 'step-video-t2v-turbo', preset: 'turbo' })).toMatchObject({ preset: 'turbo' });
    expect(await parseJson({ prompt: 'p', model: 'step-video-t2v' })).toMatchObject({ preset: 'base', model: 'step-video-t2v' });
    const bare = await parseJson({ prompt: 'p' });
    expect(bare.preset).toBeUndefined();
    expect(bare.model).toBe('step-video-t2v');
    await expectRefusal(() => parseJson({ prompt: 'p', model: 'step-video-t2v-turbo', preset: 'base' }), 400, 'conflicting_parameters', 'preset', /'turbo'/);
    await expectRefusal(() => parseJson({ prompt: 'p', model: 'step-video-t2v', preset: 'turbo' }), 400, 'conflicting_parameters', 'preset');
  });

  it('refuses an unknown model with model_not_found, listing the ids', async () => {
    await expectRefusal(() => parseJson({ prompt: 'p', model: 'sora-2' }), 400, 'model_not_found', 'model', /'step-video-t2v', 'step-video-t2v-turbo'/);
    await expectRefusal(() => sdkParse({ prompt: 'p', model: 'sora-2-pro' }), 400, 'model_not_found', 'model');
    await expectRefusal(() => parseJson({ prompt: 'p', model: 3 }), 400, 'model_not_found', 'model');
  });

  it('refuses seconds with frames, size with height or width, and both spellings of one knob', async () => {
    await expectRefusal(() => parseJson({ prompt: 'p', seconds: '4', frames: 100 }), 400, 'conflicting_parameters', 'seconds', /'frames' and 'seconds'/);
    await expectRefusal(() => parseJson({ prompt: 'p', size: '992x544', height: 544 }), 400, 'conflicting_parameters', 'size', /'height' and 'size'/);
    await expectRefusal(() => sdkParse({ prompt: 'p', size: '992x544', width: 992 }), 400, 'conflicting_parameters', 'size', /'width' and 'size'/);
    await expectRefusal(() => parseJson({ prompt: 'p', cfg_scale: 5, cfgScale: 5 }), 400, 'conflicting_parameters', 'cfg_scale', /'cfgScale' and 'cfg_scale'/);
    await expectRefusal(() => sdkParse({ prompt: 'p', time_shift: 5, timeShift: 5 }), 400, 'conflicting_parameters', 'time_shift');
    await expectRefusal(() => parseJson({ prompt: 'p', negative_prompt: 'a', negativePrompt: 'b' }), 400, 'conflicting_parameters', 'negative_prompt');
  });

  it("reports parseVideoRequest's range errors under the name that was sent", async () => {
    await expectRefusal(() => parseJson({ prompt: 'p', cfg_scale: -1 }), 400, 'invalid_field', 'cfg_scale', /^'cfg_scale' must be in \[0, 100\]/);
    await expectRefusal(() => parseJson({ prompt: 'p', cfgScale: -1 }), 400, 'invalid_field', 'cfgScale', /^'cfgScale' must be in/);
    await expectRefusal(() => parseJson({ prompt: 'p', time_shift: 0 }), 400, 'invalid_field', 'time_shift', /^'time_shift'/);
    await expectRefusal(() => parseJson({ prompt: 'p', steps: 101 }), 400, 'invalid_field', 'steps');
    await expectRefusal(() => parseJson({ prompt: 'p', frames: 205 }), 400, 'invalid_field', 'frames');
    await expectRefusal(() => parseJson({ prompt: 'p', format: 'gif' }), 400, 'invalid_field', 'format');
    await expectRefusal(() => parseJson({ prompt: 'p', preset: 'fast' }), 400, 'invalid_field', 'preset');
    await expectRefusal(() => parseJson({ prompt: 'x'.repeat(limits.maxPromptChars + 1) }), 400, 'invalid_field', 'prompt');
  });

  it('lists every accepted field', () => {
    expect(CREATE_FIELDS).toEqual(expect.arrayContaining(['prompt', 'model', 'seconds', 'size', 'input_reference', 'seed', 'steps', 'cfg_scale', 'cfgScale', 'time_shift', 'timeShift', 'negative_prompt', 'negativePrompt', 'format', 'preset', 'crop', 'frames', 'height', 'width', 'cache']));
    expect(CREATE_FIELDS).toHaveLength(20);
  });
});

describe('jobs as OpenAI videos', () => {
  const created = new Date('2025-01-01T00:00:00.900Z');
  const started = new Date('2025-01-01T00:00:05.000Z');
  const finished = new Date('2025-01-01T00:05:00.500Z');
  const t = (date: Date) => Math.floor(date.getTime() / 1000);

  it('a queued job, with only the fields of the SDK Video plus stepvideo', () => {
    const video = toOpenAIVideo(job('v1', { createdAt: created }));
    expect(Object.keys(video).filter((k) => k !== 'stepvideo').sort()).toEqual(SDK_VIDEO_KEYS);
    expect(video).toEqual({
      id: 'v1',
      object: 'video',
      model: 'step-video-t2v',
      status: 'queued',
      progress: 0,
      created_at: t(created),
      completed_at: null,
      expires_at: null,
      prompt: 'a cat',
      remixed_from_video_id: null,
      seconds: '8.16',
      size: '992x544',
      error: null,
      stepvideo: { status: 'queued', seed: null, frames: null, height: null, width: null, format: 'mp4', bytes: null, started_at: null, events: '/v1/videos/v1/events', content: '/v1/videos/v1/content' },
    });
    expect(Number.isInteger(video.created_at)).toBe(true);
  });

  it('a running job: in_progress with its percent and resolved size', () => {
    const progress: PipelineProgress = { stage: 'denoise', step: 25, total: 50, elapsedMs: 1, etaMs: 1, fraction: 0.5 };
    const video = toOpenAIVideo(job('v2', { status: 'running', createdAt: created, startedAt: started, progress, seed: 42n, size: { frames: 85, height: 544, width: 992 } }, { prompt: 'p', seed: 42 }));
    expect(video).toMatchObject({ status: 'in_progress', progress: 47, completed_at: null, seconds: '3.4', size: '992x544', error: null });
    expect(video.stepvideo).toMatchObject({ status: 'running', seed: '42', frames: 85, height: 544, width: 992, started_at: t(started) });
  });

  it('a succeeded job: completed, 100, completed_at, bytes; the requested seconds and size are reported as given', async () => {
    const request = await parseJson({ prompt: 'p', model: 'step-video-t2v-turbo', seconds: '4', size: '992x544', format: 'y4m' });
    const done: JobLike = { id: 'v3', request, status: 'succeeded', createdAt: created, startedAt: started, finishedAt: finished, seed: 2n ** 63n, size: { frames: 85, height: 544, width: 992 }, result: { path: '/tmp/v3.y4m', bytes: 1234 } };
    const video = toOpenAIVideo(done);
    expect(video).toMatchObject({ status: 'completed', progress: 100, model: 'step-video-t2v-turbo', completed_at: t(finished), seconds: '4', size: '992x544', error: null });
    expect(video.stepvideo).toMatchObject({ status: 'succeeded', seed: '9223372036854775808', format: 'y4m', bytes: 1234 });
    expect(JSON.stringify(video)).not.toContain('/tmp/'); // the file path stays private
  });

  it('a failed job carries its error; a cancelled one reads as failed with code cancelled', () => {
    const failed = toOpenAIVideo(job('v4', { status: 'failed', createdAt: created, finishedAt: finished, error: { code: 'ERR_CUDA_OOM', message: 'out of memory' } }));
    expect(failed).toMatchObject({ status: 'failed', completed_at: t(finished), error: { code: 'ERR_CUDA_OOM', message: 'out of memory' } });
    const cancelled = toOpenAIVideo(job('v5', { status: 'cancelled', createdAt: created, finishedAt: finished, progress: { stage: 'decode', chunk: 1, total: 4, elapsedMs: 1, etaMs: 1, fraction: 0.25 } }));
    expect(cancelled).toMatchObject({ status: 'failed', completed_at: t(finished), error: { code: 'cancelled' }, progress: 92 });
    expect(cancelled.stepvideo.status).toBe('cancelled');
  });

  it('seconds and size fall back to the resolved size, then the request, then the released default', () => {
    expect(toOpenAIVideo(job('a', {}, { prompt: 'p', frames: 51, width: 256 }))).toMatchObject({ seconds: '2.04', size: '256x544' });
    expect(toOpenAIVideo(job('b', {}, { prompt: 'p', height: 320 }))).toMatchObject({ seconds: '8.16', size: '992x320' });
    expect(toOpenAIVideo(job('c', { size: { frames: 34, height: 128, width: 256 } }, { prompt: 'p', frames: 40, width: 260, height: 130 }))).toMatchObject({ seconds: '1.36', size: '256x128' });
    expect(toOpenAIVideo(job('d', {}, { prompt: 'p', preset: 'turbo' })).model).toBe('step-video-t2v-turbo');
  });

  it('progress: an integer percent that only grows across a real job and reaches 100 only when completed', () => {
    const events: PipelineProgress[] = [{ stage: 'text', done: false, elapsedMs: 0, fraction: 0 }, { stage: 'text', done: true, elapsedMs: 900, fraction: 1 }];
    const steps = 4;
    const blocks = 3;
    for (let step = 0; step < steps; step++) {
      for (let block = 1; block <= blocks; block++) events.push({ stage: 'denoise', step, total: steps, block, blocks, elapsedMs: 1, etaMs: 1, fraction: (step + block / blocks) / steps });
      events.push({ stage: 'denoise', step: step + 1, total: steps, elapsedMs: 1, etaMs: 1, fraction: (step + 1) / steps });
    }
    for (let chunk = 1; chunk <= 3; chunk++) events.push({ stage: 'decode', chunk, total: 3, elapsedMs: 1, etaMs: 1, fraction: chunk / 3 });
    for (let frames = 0; frames <= 51; frames += 17) events.push({ stage: 'write', frames, totalFrames: 51, path: '/x', done: false, fraction: frames / 51 });
    events.push({ stage: 'write', frames: 51, totalFrames: 51, path: '/x', done: true, fraction: 1 });

    const percents = [toOpenAIVideo(job('q')).progress, toOpenAIVideo(job('r', { status: 'running' })).progress];
    for (const progress of events) percents.push(toOpenAIVideo(job('r', { status: 'running', progress })).progress);
    percents.push(toOpenAIVideo(job('s', { status: 'succeeded', progress: events.at(-1)! })).progress);
    for (const [i, p] of percents.entries()) {
      expect(Number.isInteger(p)).toBe(true);
      if (i > 0) expect(p).toBeGreaterThanOrEqual(percents[i - 1]!);
    }
    expect(percents[0]).toBe(0);
    expect(percents.at(-2)).toBe(99);
    expect(percents.at(-1)).toBe(100);
    expect(percents.slice(0, -1).every((p) => p < 100)).toBe(true);
    // Stage boundaries.
    expect(progressPercent({ stage: 'load', part: 'dit', loadedBytes: 5, totalBytes: 10, fraction: 0.5 })).toBe(0);
    expect(progressPercent({ stage: 'prepare', dir: '/x', done: true, fraction: 1 })).toBe(0);
    expect(progressPercent({ stage: 'text', done: true, elapsedMs: 1, fraction: 1 })).toBe(5);
    expect(progressPercent({ stage: 'denoise', step: 50, total: 50, elapsedMs: 1, etaMs: 0, fraction: 1 })).toBe(90);
    expect(progressPercent({ stage: 'decode', chunk: 12, total: 12, elapsedMs: 1, etaMs: 0, fraction: 1 })).toBe(98);
    expect(progressPercent({ stage: 'denoise', step: 0, total: 50, elapsedMs: 1, etaMs: Number.NaN, fraction: Number.NaN })).toBe(5);
    expect(progressPercent({ stage: 'decode', chunk: 9, total: 3, elapsedMs: 1, etaMs: 0, fraction: 3 })).toBe(98);
    expect(progressPercent(undefined)).toBe(0);
  });
});

describe('list pages', () => {
  // Created one second apart, with c and d at the same instant (input order breaks the tie).
  const jobs = ['a', 'b', 'c', 'd', 'e'].map((id, i) => job(id, { createdAt: new Date(1_700_000_000_000 + 1000 * (id === 'd' ? i - 1 : i)) }));
  const ids = (query: string, list = jobs) => listVideos(list, new URLSearchParams(query));

  it('defaults to the newest first, 20 a page', () => {
    const page = ids('');
    expect(page).toMatchObject({ object: 'list', first_id: 'e', last_id: 'a', has_more: false });
    expect(page.data.map((v) => v.id)).toEqual(['e', 'd', 'c', 'b', 'a']);
    const many = Array.from({ length: 25 }, (_, i) => job(`j${i}`, { createdAt: new Date(i * 1000) }));
    expect(ids('', many).data).toHaveLength(20);
    expect(ids('', many).has_more).toBe(true);
  });

  it('pages with after and limit in both orders; ties keep input order (desc is asc reversed)', () => {
    expect(ids('order=asc').data.map((v) => v.id)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(ids('order=asc&limit=2')).toMatchObject({ first_id: 'a', last_id: 'b', has_more: true });
    expect(ids('order=asc&limit=2&after=b').data.map((v) => v.id)).toEqual(['c', 'd']);
    expect(ids('order=asc&limit=2&after=d')).toMatchObject({ first_id: 'e', last_id: 'e', has_more: false });
    expect(ids('limit=2&after=d').data.map((v) => v.id)).toEqual(['c', 'b']);
    expect(ids('limit=2&after=b')).toMatchObject({ first_id: 'a', last_id: 'a', has_more: false });
    expect(ids('limit=1&after=a')).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });
    expect(ids('limit=3&after=c')).toMatchObject({ has_more: false });
    expect(ids('limit=2&after=c')).toMatchObject({ has_more: false, last_id: 'a' });
    expect(listVideos([], new URLSearchParams())).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });
    expect(ids('limit=100').data).toHaveLength(5);
  });

  it('refuses a bad limit, order or after with its param', async () => {
    for (const limit of ['0', '101', '-1', '2.5', 'ten', '']) await expectRefusal(() => ids(`limit=${limit}`), 400, 'invalid_value', 'limit');
    for (const order of ['ASC', 'newest', '']) await expectRefusal(() => ids(`order=${order}`), 400, 'invalid_value', 'order');
    await expectRefusal(() => ids('after=zzz'), 400, 'invalid_value', 'after', /zzz/);
  });

  it("the SDK's own iteration visits every job once, newest first, then oldest first", async () => {
    const { client, calls } = fakeClient((url) => {
      try {
        return jsonReply(listVideos(jobs, url.searchParams));
      } catch (error) {
        return jsonReply(errorBody(error), 400);
      }
    });
    const seen: string[] = [];
    for await (const video of client.videos.list({ limit: 2 })) seen.push(video.id);
    expect(seen).toEqual(['e', 'd', 'c', 'b', 'a']);
    expect(calls.map((c) => c.url.search)).toEqual(['?limit=2', '?limit=2&after=d', '?limit=2&after=b']);
    const asc: string[] = [];
    for await (const video of client.videos.list({ limit: 3, order: 'asc' })) asc.push(video.id);
    expect(asc).toEqual(['a', 'b', 'c', 'd', 'e']);
    const first = await client.videos.list();
    expect(first.data.map((v: Video) => v.id)).toEqual(['e', 'd', 'c', 'b', 'a']);
    expect(first.hasNextPage()).toBe(false);
  });
});

describe('delete, content variant, retrieve through the SDK', () => {
  it('deletedVideo is the SDK VideoDeleteResponse', async () => {
    const { client, calls } = fakeClient((url) => jsonReply(deletedVideo(url.pathname.split('/').at(-1)!)));
    expect(await client.videos.delete('v9')).toEqual({ id: 'v9', object: 'video.deleted', deleted: true });
    expect(calls[0]!.init.method).toBe('DELETE');
  });

  it('only the video variant exists', async () => {
    expect(contentVariant(new URLSearchParams())).toBe('video');
    expect(contentVariant(new URLSearchParams('variant=video'))).toBe('video');
    const { client, calls } = fakeClient(() => new Response('x'));
    await client.videos.downloadContent('v1', { variant: 'thumbnail' });
    const query = calls[0]!.url.searchParams;
    await expectRefusal(() => contentVariant(query), 400, 'unsupported_parameter', 'variant', /thumbnail/);
    await expectRefusal(() => contentVariant(new URLSearchParams('variant=spritesheet')), 400, 'unsupported_parameter', 'variant');
    await expectRefusal(() => contentVariant(new URLSearchParams('variant=poster')), 400, 'invalid_value', 'variant');
  });

  it('the SDK reads a job back unchanged', async () => {
    const video = toOpenAIVideo(job('v7', { status: 'running', progress: { stage: 'text', done: true, elapsedMs: 1, fraction: 1 } }));
    const { client } = fakeClient(() => jsonReply(video));
    expect(await client.videos.retrieve('v7')).toEqual(video);
  });
});

describe('error bodies', () => {
  it('have the OpenAI shape plus the status; param is null when absent', () => {
    expect(errorBody(new HttpError(400, 'invalid_field', 'bad', {}, 'seed'))).toEqual({ error: { status: 400, code: 'invalid_field', message: 'bad', type: 'invalid_request_error', param: 'seed' } });
    expect(errorBody(new HttpError(404, 'unknown_job', 'no'))).toEqual({ error: { status: 404, code: 'unknown_job', message: 'no', type: 'invalid_request_error', param: null } });
    expect(errorBody(new HttpError(503, 'queue_full', 'later', { 'retry-after': '30' })).error).toMatchObject({ type: 'server_error', param: null });
    expect(errorBody(new Error('boom')).error).toMatchObject({ status: 500, code: 'internal', type: 'server_error', param: null });
  });

  it('the SDK throws BadRequestError with code, param, type and message from a refusal', async () => {
    const { client } = fakeClient(async (_url, init) => {
      const request = new Request('http://x', { method: 'POST', body: init.body ?? null, headers: init.headers ?? {} });
      try {
        await parseCreateVideo(request.headers.get('content-type') ?? undefined, Buffer.from(await request.arrayBuffer()), limits);
        return jsonReply({});
      } catch (error) {
        return jsonReply(errorBody(error), (error as HttpError).status);
      }
    });
    const thrown = await client.videos.create({ prompt: 'p', model: 'sora-2' }).catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(BadRequestError);
    const error = thrown as BadRequestError;
    expect({ status: error.status, code: error.code, param: error.param, type: error.type }).toEqual({ status: 400, code: 'model_not_found', param: 'model', type: 'invalid_request_error' });
    expect(error.message).toMatch(/^400 model "sora-2" does not exist/);
  });

  it('the SDK reads a 5xx as InternalServerError with type server_error', async () => {
    const { client } = fakeClient(() => jsonReply(errorBody(new Error('kernel failed')), 500));
    const error = (await client.videos.retrieve('x').catch((e: unknown) => e)) as InternalServerError;
    expect(error).toBeInstanceOf(InternalServerError);
    expect({ code: error.code, type: error.type, param: error.param }).toEqual({ code: 'internal', type: 'server_error', param: null });
  });
});
