// `stepvideo serve`: an HTTP server (node:http only) over a backend that runs the work: the pipeline
// in this process (LocalBackend), or `stepvideo worker` processes behind a Redis queue (QueueBackend).
//
// The OpenAI Videos API (what the official `openai` SDK calls; lib/server/openai.ts):
//   POST   /v1/videos               multipart/form-data or JSON: model, prompt, seconds, size, and the
//                                   Step-Video knobs (seed, steps, cfg_scale, time_shift,
//                                   negative_prompt, format, preset, crop) → the video object
//   GET    /v1/videos               the list page (after, limit, order)
//   GET    /v1/videos/{id}          the video object (status, integer progress, error)
//   DELETE /v1/videos/{id}          cancels it if unfinished, then forgets it and its file
//   GET    /v1/videos/{id}/content  the video file once completed
// and this server's own:
//   GET    /v1/videos/{id}/events   server-sent events: `status` (the video object), `progress`, `preview`
//                                   (a small PNG as a data URL, when the server makes previews), then `end`
//   POST   /v1/videos/{id}/cancel   cancel a queued or running job, keeping its record
//   GET    /v1/health               no token needed (for load balancers)
//   POST   /caption-api             {"prompts": [...]} → safetensors {y, y_mask, clip_embedding}
//   POST   /vae-api                 safetensors {samples: [B, F, z, h, w]} → safetensors {samples: [B, T, 3, H, W] f32}
//
// The two last play the roles of the official caption/VAE server (spec §6.1) with a safe body
// format (safetensors and JSON, never pickle); they also accept GET with a body, as the official
// client sends. Every bad request is a 4xx in OpenAI's error shape.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

import { asStepVideoError } from '../errors.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { StepVideo } from '../pipeline/pipeline.js';
import type { ServerBackend } from './backend.js';
import { HttpError, readBody, readJsonObject, sendError, sendJson } from './http.js';
import { type JobView, isFinished, unknownJob } from './jobs.js';
import { LocalBackend } from './local.js';
import { contentVariant, deletedVideo, listVideos, parseCreateVideo, toOpenAIVideo } from './openai.js';
import { DEFAULT_LIMITS, type ServerLimits, parseCaptionRequest } from './requests.js';
import { SseStream } from './sse.js';

export { DEFAULT_LIMITS, type ServerLimits } from './requests.js';
export { formatSseEvent } from './sse.js';
export type { ServerBackend } from './backend.js';

export interface ServerOptions {
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Default 8080 (the official server's); 0 picks a free port. */
  port?: number;
  /** Where finished videos are kept; default a fresh folder under the OS temp dir, removed on close. */
  resultsDir?: string;
  limits?: Partial<ServerLimits>;
  /** When set, every route but /v1/health needs `Authorization: Bearer <token>` (how the OpenAI SDK sends its API key). */
  token?: string;
  /** Steps between live previews (`preview` events on /events) of the single-process server's jobs; 0 or absent: none. */
  previewEvery?: number;
  log?: (line: string) => void;
}

const CONTENT_TYPES = { mp4: 'video/mp4', y4m: 'video/x-yuv4mpeg' } as const;

export class StepVideoServer {
  readonly backend: ServerBackend;
  readonly limits: ServerLimits;
  readonly #server: Server;
  readonly #options: ServerOptions;
  readonly #streams = new Set<SseStream>();
  readonly #token: Buffer | undefined;
  #resultsDir: string | undefined;
  #ownsResults = false;

  constructor(backend: ServerBackend, options: ServerOptions = {}) {
    this.backend = backend;
    this.#options = options;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#token = options.token !== undefined && options.token !== '' ? Buffer.from(options.token) : undefined;
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => sendError(response, error));
    });
    // A malformed request line or header never reaches the handler: answer it plainly.
    this.#server.on('clientError', (_error, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  get jobs() {
    return this.backend.jobs;
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
    await this.backend.open(this.#resultsDir);
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

  /** Stops accepting connections, closes the backend (a single-process one cancels its jobs) and event streams; removes its own results folder. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await this.backend.close();
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
      return sendJson(response, 200, { status: 'ok', ...(await this.backend.describe()), ...(await this.jobs.counts()) });
    }
    this.#authorize(request);
    if (url.pathname === '/caption-api') {
      allow('POST', 'GET');
      const prompts = parseCaptionRequest(await readJsonObject(request, this.limits.maxJsonBytes), this.limits);
      return this.#sendSafetensors(response, await this.backend.captions(prompts, closedSignal(response)));
    }
    if (url.pathname === '/vae-api') {
      allow('POST', 'GET');
      const tensors = await this.#parseSafetensors(await readBody(request, this.limits.maxVaeBytes));
      return this.#sendSafetensors(response, await this.backend.decode(tensors.get('samples'), [...tensors.keys()], closedSignal(response)));
    }
    if (parts[0] === 'v1' && parts[1] === 'videos') {
      if (parts.length === 2) {
        allow('POST', 'GET');
        if (method === 'GET') return sendJson(response, 200, listVideos(await this.jobs.list(), url.searchParams));
        const body = await readBody(request, this.limits.maxJsonBytes);
        const job = await this.jobs.submit(await parseCreateVideo(request.headers['content-type'], body, this.limits));
        this.#log(`job ${job.id} queued: ${JSON.stringify(job.request.prompt.slice(0, 60))}`);
        return sendJson(response, 200, toOpenAIVideo(job), { location: `/v1/videos/${job.id}` });
      }
      const id = parts[2]!;
      if (parts.length === 3) {
        allow('GET', 'DELETE');
        if (method === 'DELETE') {
          await this.jobs.remove(id);
          this.#log(`job ${id} deleted`);
          return sendJson(response, 200, deletedVideo(id));
        }
        return sendJson(response, 200, toOpenAIVideo(await this.#job(id)));
      }
      if (parts.length === 4 && ['events', 'content', 'cancel'].includes(parts[3]!)) {
        allow(parts[3] === 'cancel' ? 'POST' : 'GET');
        if (parts[3] === 'cancel') return sendJson(response, 202, toOpenAIVideo(await this.jobs.cancel(id)));
        const job = await this.#job(id);
        if (parts[3] === 'events') return this.#events(job, response);
        return this.#content(job, contentVariant(url.searchParams), response);
      }
    }
    throw new HttpError(404, 'not_found', `no route ${method} ${url.pathname}`);
  }

  async #job(id: string): Promise<JobView> {
    const job = await this.jobs.get(id);
    if (job === undefined) throw unknownJob(id);
    return job;
  }

  /** The bearer token, compared in constant time; 401 in OpenAI's shape otherwise. */
  #authorize(request: IncomingMessage): void {
    if (this.#token === undefined) return;
    const header = request.headers.authorization ?? '';
    const given = Buffer.from(/^Bearer (.+)$/i.exec(header)?.[1] ?? '');
    if (given.length !== this.#token.length || !timingSafeEqual(given, this.#token)) {
      throw new HttpError(401, 'invalid_api_key', header === '' ? 'this server needs an API key: send Authorization: Bearer <token>' : 'the API key is not valid for this server', { 'www-authenticate': 'Bearer' });
    }
  }

  #events(first: JobView, response: ServerResponse): void {
    const stream = new SseStream(response);
    this.#streams.add(stream);
    const end = (job: JobView) => {
      unsubscribe();
      stream.send('end', { id: job.id, status: toOpenAIVideo(job).status, stepvideo: { status: job.status } });
      stream.close();
    };
    const unsubscribe = this.jobs.subscribe(first.id, (event) => {
      if (event.type === 'progress') {
        const { path: _path, ...progress } = event.progress as unknown as Record<string, unknown>;
        stream.send('progress', { id: first.id, ...progress });
      } else if (event.type === 'preview') {
        const { png, ...rest } = event.preview;
        stream.send('preview', { id: first.id, ...rest, image: `data:image/png;base64,${png}` });
      } else {
        stream.send('status', toOpenAIVideo(event.job));
        if (isFinished(event.job.status)) end(event.job);
      }
    });
    response.on('close', () => {
      unsubscribe();
      this.#streams.delete(stream);
    });
    stream.send('status', toOpenAIVideo(first));
    if (isFinished(first.status)) {
      end(first);
      return;
    }
    // A job that finished between the read above and the subscription sends no further event: look once more.
    void this.jobs.get(first.id).then((now) => {
      if (now !== undefined && isFinished(now.status) && !stream.closed) {
        stream.send('status', toOpenAIVideo(now));
        end(now);
      }
    }, () => undefined);
  }

  #content(job: JobView, _variant: 'video', response: ServerResponse): void {
    if (job.status !== 'succeeded' || job.result === undefined) {
      throw new HttpError(409, 'not_ready', `video '${job.id}' is ${job.status}${job.error ? ` (${job.error.message})` : ''}; its content exists once it has completed`);
    }
    const { format } = job.request;
    response.writeHead(200, {
      'content-type': CONTENT_TYPES[format],
      'content-length': job.result.bytes,
      'content-disposition': `attachment; filename="${job.id}.${format}"`,
    });
    createReadStream(job.result.path).on('error', () => response.destroy()).pipe(response);
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

/** Aborts when the client goes away before the reply is complete. */
function closedSignal(response: ServerResponse): AbortSignal {
  const controller = new AbortController();
  response.on('close', () => {
    if (!response.writableFinished) controller.abort(new Error('the client closed the connection'));
  });
  return controller.signal;
}

/** A single-process server over a loaded pipeline (call listen()). */
export function createStepVideoServer(pipeline: StepVideo, options: ServerOptions = {}): StepVideoServer {
  const limits = { ...DEFAULT_LIMITS, ...options.limits };
  return new StepVideoServer(new LocalBackend(pipeline, limits, (line) => options.log?.(line), options.previewEvery ?? 0), options);
}
