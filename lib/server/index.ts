// `stepvideo serve`: an HTTP server (node:http only) over one StepVideo pipeline.
//
//   POST   /v1/videos               {prompt, negativePrompt?, frames?, height?, width?, steps?, cfgScale?,
//                                   timeShift?, seed?, preset?, format?: 'mp4'|'y4m', crop?} → 202 job
//   GET    /v1/videos               every known job
//   GET    /v1/videos/{id}          status, progress, result
//   GET    /v1/videos/{id}/events   server-sent events: `status`, `progress`, then `end`
//   GET    /v1/videos/{id}/content  the video file once the job has succeeded
//   POST   /v1/videos/{id}/cancel   (or DELETE /v1/videos/{id}) cancel a queued or running job
//   GET    /v1/health
//   POST   /caption-api             {"prompts": [...]} → safetensors {y, y_mask, clip_embedding}
//   POST   /vae-api                 safetensors {samples: [B, F, z, h, w]} → safetensors {samples: [B, T, 3, H, W] f32}
//
// The two last play the roles of the official caption/VAE server (spec §6.1) with a safe body
// format (safetensors and JSON, never pickle); they also accept GET with a body, as the official
// client sends. Video jobs run one at a time; caption and VAE requests take turns with them on
// the device. Every bad request is a 4xx with a JSON message.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { bf16ArrayToF32, f16BitsToF32 } from '../dtype.js';
import { asStepVideoError } from '../errors.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { StepVideo } from '../pipeline/pipeline.js';
import type { PipelineProgress } from '../pipeline/progress.js';
import { FRAMES_PER_CHUNK, LATENTS_PER_CHUNK, SPATIAL_FACTOR } from '../models/vae/config.js';
import { HttpError, readBody, readJsonObject, sendError, sendJson } from './http.js';
import { type Job, JobQueue, type JobResult, isFinished } from './jobs.js';
import { DEFAULT_LIMITS, type ServerLimits, parseCaptionRequest, parseVideoRequest } from './requests.js';
import { SseStream } from './sse.js';

export { DEFAULT_LIMITS, type ServerLimits } from './requests.js';
export { formatSseEvent } from './sse.js';

export interface ServerOptions {
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Default 8080 (the official server's); 0 picks a free port. */
  port?: number;
  /** Where finished videos are kept; default a fresh folder under the OS temp dir, removed on close. */
  resultsDir?: string;
  limits?: Partial<ServerLimits>;
  log?: (line: string) => void;
}

const CONTENT_TYPES = { mp4: 'video/mp4', y4m: 'video/x-yuv4mpeg' } as const;

export class StepVideoServer {
  readonly pipeline: StepVideo;
  readonly limits: ServerLimits;
  readonly jobs: JobQueue;
  readonly #server: Server;
  readonly #options: ServerOptions;
  readonly #streams = new Set<SseStream>();
  #resultsDir: string | undefined;
  #ownsResults = false;

  constructor(pipeline: StepVideo, options: ServerOptions = {}) {
    this.pipeline = pipeline;
    this.#options = options;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.jobs = new JobQueue((job, signal, onProgress) => this.#runJob(job, signal, onProgress), { maxQueued: this.limits.maxQueued, maxFinished: this.limits.maxFinished });
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => sendError(response, error));
    });
    // A malformed request line or header never reaches the handler: answer it plainly.
    this.#server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  /** Starts listening; resolves with the base URL. */
  async listen(): Promise<string> {
    if (this.#options.resultsDir !== undefined) {
      this.#resultsDir = path.resolve(this.#options.resultsDir);
      await mkdir(this.#resultsDir, { recursive: true });
    } else {
      this.#resultsDir = await mkdtemp(path.join(os.tmpdir(), 'stepvideo-serve-'));
      this.#ownsResults = true;
    }
    const host = this.#options.host ?? '127.0.0.1';
    const port = this.#options.port ?? 8080;
    await new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => reject(asStepVideoError(error, 'ERR_IO', `cannot listen on ${host}:${port}`));
      this.#server.once('error', fail);
      this.#server.listen(port, host, () => {
        this.#server.off('error', fail);
        resolve();
      });
    });
    return this.url;
  }

  get url(): string {
    const address = this.#server.address() as AddressInfo | null;
    if (address === null) throw new Error('the server is not listening');
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host}:${address.port}`;
  }

  /** Stops accepting connections, cancels every job, closes event streams; removes its own results folder. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await this.jobs.close();
    for (const stream of this.#streams) stream.close();
    this.#server.closeAllConnections();
    await closed;
    if (this.#ownsResults && this.#resultsDir) await rm(this.#resultsDir, { recursive: true, force: true });
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter((p) => p !== '');
    const method = request.method ?? 'GET';
    const allow = (...methods: string[]) => {
      if (!methods.includes(method)) throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on ${url.pathname}; use ${methods.join(' or ')}`, { allow: methods.join(', ') });
    };

    if (url.pathname === '/v1/health') {
      allow('GET');
      return sendJson(response, 200, { status: 'ok', device: this.pipeline.device.name, builtin: this.pipeline.builtin, running: this.jobs.busy, waiting: this.jobs.waiting });
    }
    if (url.pathname === '/caption-api') {
      allow('POST', 'GET');
      return this.#captions(request, response);
    }
    if (url.pathname === '/vae-api') {
      allow('POST', 'GET');
      return this.#vae(request, response);
    }
    if (parts[0] === 'v1' && parts[1] === 'videos') {
      if (parts.length === 2) {
        allow('POST', 'GET');
        if (method === 'GET') return sendJson(response, 200, { jobs: this.jobs.list().map((job) => this.#describe(job)) });
        const job = this.jobs.submit(parseVideoRequest(await readJsonObject(request, this.limits.maxJsonBytes), this.limits));
        this.#log(`job ${job.id} queued: ${JSON.stringify(job.request.prompt.slice(0, 60))}`);
        return sendJson(response, 202, this.#describe(job), { location: `/v1/videos/${job.id}` });
      }
      const job = this.jobs.get(parts[2]!);
      if (parts.length === 3) {
        allow('GET', 'DELETE');
        if (job === undefined) throw unknownJob(parts[2]!);
        if (method === 'DELETE') return sendJson(response, 202, this.#describe(this.jobs.cancel(job.id)));
        return sendJson(response, 200, this.#describe(job));
      }
      if (parts.length === 4 && ['events', 'content', 'cancel'].includes(parts[3]!)) {
        allow(parts[3] === 'cancel' ? 'POST' : 'GET');
        if (job === undefined) throw unknownJob(parts[2]!);
        if (parts[3] === 'cancel') return sendJson(response, 202, this.#describe(this.jobs.cancel(job.id)));
        if (parts[3] === 'events') return this.#events(job, response);
        return this.#content(job, response);
      }
    }
    throw new HttpError(404, 'not_found', `no route ${method} ${url.pathname}`);
  }

  #describe(job: Job): Record<string, unknown> {
    const base = `/v1/videos/${job.id}`;
    const { path: _path, ...progress } = (job.progress ?? {}) as Record<string, unknown>;
    return {
      id: job.id,
      status: job.status,
      request: job.request,
      seed: job.seed?.toString(),
      createdAt: job.createdAt.toISOString(),
      startedAt: job.startedAt?.toISOString(),
      finishedAt: job.finishedAt?.toISOString(),
      progress: job.progress && !isFinished(job.status) ? progress : undefined,
      error: job.error,
      result: job.result ? { bytes: job.result.bytes, format: job.request.format, contentType: CONTENT_TYPES[job.request.format], url: `${base}/content` } : undefined,
      links: { self: base, events: `${base}/events`, content: `${base}/content`, cancel: `${base}/cancel` },
    };
  }

  async #runJob(job: Job, signal: AbortSignal, onProgress: (p: PipelineProgress) => void): Promise<JobResult> {
    const { format, crop, ...request } = job.request;
    this.#log(`job ${job.id} started`);
    const video = await this.pipeline.generate({ ...request, crop, signal, onProgress });
    job.seed = video.info.seed;
    const target = path.join(this.#resultsDir!, `${job.id}.${format}`);
    const written = await video.save(target, { format, signal });
    const { size } = await stat(written);
    this.#log(`job ${job.id} done: ${size} bytes`);
    return { path: written, bytes: size };
  }

  #events(job: Job, response: ServerResponse): void {
    const stream = new SseStream(response);
    this.#streams.add(stream);
    const end = () => {
      unsubscribe();
      stream.send('end', { id: job.id, status: job.status });
      stream.close();
    };
    const unsubscribe = this.jobs.subscribe(job.id, (event) => {
      if (event.type === 'progress') {
        const { path: _path, ...progress } = event.progress as unknown as Record<string, unknown>;
        stream.send('progress', { id: job.id, ...progress });
      } else {
        stream.send('status', this.#describe(job));
        if (isFinished(job.status)) end();
      }
    });
    response.on('close', () => {
      unsubscribe();
      this.#streams.delete(stream);
    });
    stream.send('status', this.#describe(job));
    if (isFinished(job.status)) end();
  }

  #content(job: Job, response: ServerResponse): void {
    if (job.status !== 'succeeded' || job.result === undefined) {
      throw new HttpError(409, 'not_ready', `job '${job.id}' is ${job.status}${job.status === 'failed' ? `: ${job.error?.message}` : ''}; the video exists once it has succeeded`);
    }
    const { format } = job.request;
    response.writeHead(200, {
      'content-type': CONTENT_TYPES[format],
      'content-length': job.result.bytes,
      'content-disposition': `attachment; filename="${job.id}.${format}"`,
    });
    createReadStream(job.result.path).on('error', () => response.destroy()).pipe(response);
  }

  async #captions(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const prompts = parseCaptionRequest(await readJsonObject(request, this.limits.maxJsonBytes), this.limits);
    const captions = await this.pipeline.encodeCaptions(prompts, { signal: closedSignal(response) });
    await this.#sendSafetensors(response, { ...captions });
  }

  async #vae(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readBody(request, this.limits.maxVaeBytes);
    const tensors = await this.#parseSafetensors(body);
    const samples = tensors.get('samples');
    if (samples === undefined) throw new HttpError(400, 'missing_tensor', `the body must hold a tensor named 'samples' [B, F, z, h, w] (found: ${[...tensors.keys()].join(', ') || 'none'})`);
    const [B, F, Z, h, w] = samples.shape;
    const z = this.pipeline.vae.config.zChannels;
    if (samples.shape.length !== 5 || Z !== z) throw new HttpError(400, 'bad_shape', `'samples' must be [B, F, ${z}, h, w] (got [${samples.shape.join(', ')}])`);
    const maxLatentFrames = Math.floor(this.limits.maxFrames / FRAMES_PER_CHUNK) * LATENTS_PER_CHUNK;
    const maxLatentSize = Math.floor(this.limits.maxSize / SPATIAL_FACTOR);
    if (B! < 1 || B! > 4 || F! < LATENTS_PER_CHUNK || F! > maxLatentFrames || F! % LATENTS_PER_CHUNK !== 0 || h! < 1 || h! > maxLatentSize || w! < 1 || w! > maxLatentSize) {
      throw new HttpError(400, 'out_of_range', `'samples' [${samples.shape.join(', ')}] is outside the limits: B 1..4, F a multiple of ${LATENTS_PER_CHUNK} up to ${maxLatentFrames}, h and w up to ${maxLatentSize}`);
    }
    const values = toFloat32(samples);
    if (values.some((v) => !Number.isFinite(v))) throw new HttpError(400, 'not_finite', "'samples' holds NaN or infinite values");
    const frames = await this.pipeline.decodeLatents(values, samples.shape, { signal: closedSignal(response) });
    await this.#sendSafetensors(response, { samples: frames });
  }

  async #parseSafetensors(body: Buffer): Promise<Map<string, HostTensor>> {
    const file = path.join(this.#resultsDir!, `.upload-${randomBytes(8).toString('hex')}.safetensors`);
    try {
      await writeFile(file, body);
      return await readSafetensors(file);
    } catch (error) {
      throw new HttpError(400, 'bad_safetensors', `the body is not a valid safetensors file: ${(error as Error).message.replace(file, '<body>')}`);
    } finally {
      await rm(file, { force: true });
    }
  }

  async #sendSafetensors(response: ServerResponse, tensors: Record<string, HostTensor>): Promise<void> {
    const file = path.join(this.#resultsDir!, `.reply-${randomBytes(8).toString('hex')}.safetensors`);
    try {
      await writeSafetensors(file, tensors);
      const { size } = await stat(file);
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
      await new Promise<void>((resolve, reject) => {
        const stream = createReadStream(file);
        stream.on('error', reject);
        response.on('close', resolve);
        stream.pipe(response);
      });
    } finally {
      await rm(file, { force: true });
    }
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}

function unknownJob(id: string): HttpError {
  return new HttpError(404, 'unknown_job', `no job '${id}'`);
}

/** Aborts when the client goes away before the reply is complete. */
function closedSignal(response: ServerResponse): AbortSignal {
  const controller = new AbortController();
  response.on('close', () => {
    if (!response.writableFinished) controller.abort(new Error('the client closed the connection'));
  });
  return controller.signal;
}

function toFloat32(tensor: HostTensor): Float32Array {
  switch (tensor.dtype) {
    case 'f32':
      return tensor.data as Float32Array;
    case 'bf16':
      return bf16ArrayToF32(tensor.data as Uint16Array);
    case 'f16':
      return Float32Array.from(tensor.data as Uint16Array, f16BitsToF32);
    default:
      throw new HttpError(400, 'bad_dtype', `'samples' must be F32, BF16 or F16 (got ${tensor.dtype})`);
  }
}

/** Creates a server over a loaded pipeline (call listen()). */
export function createStepVideoServer(pipeline: StepVideo, options: ServerOptions = {}): StepVideoServer {
  return new StepVideoServer(pipeline, options);
}
