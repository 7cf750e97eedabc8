// The API node's side of the Redis queue: `stepvideo serve --queue URL`. It holds no model: video
// jobs go on the 'videos' queue, caption and VAE requests on their own queues, and `stepvideo
// worker` processes on any machine run them. Job state lives in Redis (BullMQ), so any API node
// answers for any job; videos are read from the results folder all nodes and workers share.
import { randomBytes, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';

import type { Job as BullJob, JobType, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';

import { type HostTensor, readSafetensors, writeSafetensors } from '../../io/safetensors.js';
import type { PipelineProgress } from '../../pipeline/progress.js';
import type { ServerBackend } from '../backend.js';
import { HttpError } from '../http.js';
import { type JobEvent, type JobPreview, type JobStatus, type JobView, type VideoJobs, isFinished, jobFinished, queueFull, unknownJob } from '../jobs.js';
import type { ServerLimits, VideoJobRequest } from '../requests.js';
import {
  CANCEL_TTL_S,
  DEFAULT_PREFIX,
  QUEUE_NAMES,
  type QueueLibraries,
  type RoleJobData,
  type RoleJobReturn,
  type VideoJobData,
  type VideoJobReturn,
  cancelChannel,
  cancelKey,
  checkRedisUrl,
  connect,
  decodeFailure,
  isJobId,
  loadQueueLibraries,
  previewChannel,
  redactRedisUrl,
} from './connection.js';

export interface QueueBackendOptions {
  /** BullMQ key prefix (default 'stepvideo'). */
  prefix?: string;
  /** How often a video job is tried when its worker fails with a server-side error (default 2). */
  attempts?: number;
  /** Longest wait for a caption or VAE reply from a worker (default 10 min). */
  roleTimeoutMs?: number;
  log?: (line: string) => void;
}

const QUEUED_TYPES: JobType[] = ['waiting', 'prioritized', 'delayed', 'waiting-children'];
const STATE_OF: Record<string, JobStatus> = { active: 'running', completed: 'succeeded', failed: 'failed' };

export class QueueBackend implements ServerBackend {
  readonly url: string;
  readonly #limits: ServerLimits;
  readonly #options: QueueBackendOptions;
  readonly #prefix: string;
  #libraries: QueueLibraries | undefined;
  #redis: Redis | undefined;
  #subscriber: Redis | undefined;
  #queues: { video: Queue; caption: Queue; vae: Queue } | undefined;
  #events: { video: QueueEvents; caption: QueueEvents; vae: QueueEvents } | undefined;
  #jobs: RedisJobs | undefined;
  #resultsDir = '';

  constructor(url: string, limits: ServerLimits, options: QueueBackendOptions = {}) {
    this.url = checkRedisUrl(url);
    this.#limits = limits;
    this.#options = options;
    this.#prefix = options.prefix ?? DEFAULT_PREFIX;
  }

  get jobs(): VideoJobs {
    if (this.#jobs === undefined) throw new Error('the backend is not open (call open(resultsDir) first)');
    return this.#jobs;
  }

  async open(resultsDir: string): Promise<void> {
    this.#resultsDir = resultsDir;
    const libraries = (this.#libraries = await loadQueueLibraries());
    const { Queue, QueueEvents } = libraries.bullmq;
    this.#redis = connect(libraries, this.url, 'command');
    this.#subscriber = connect(libraries, this.url, 'blocking');
    const queue = (name: string) => new Queue(name, { connection: this.#redis!, prefix: this.#prefix });
    // Each QueueEvents reads a Redis stream with a blocking command: a connection of its own.
    const events = (name: string) => new QueueEvents(name, { connection: connect(libraries, this.url, 'blocking'), prefix: this.#prefix });
    this.#queues = { video: queue(QUEUE_NAMES.video), caption: queue(QUEUE_NAMES.caption), vae: queue(QUEUE_NAMES.vae) };
    this.#events = { video: events(QUEUE_NAMES.video), caption: events(QUEUE_NAMES.caption), vae: events(QUEUE_NAMES.vae) };
    for (const e of Object.values(this.#events)) e.on('error', () => undefined);
    for (const q of Object.values(this.#queues)) q.on('error', () => undefined);
    this.#jobs = new RedisJobs(this.#queues.video, this.#events.video, this.#redis, this.#subscriber, { ...this.#options, prefix: this.#prefix, limits: this.#limits, resultsDir });
    await Promise.all([...Object.values(this.#events).map((e) => e.waitUntilReady()), this.#jobs.start()]);
    this.#options.log?.(`queue ${redactRedisUrl(this.url)} (prefix '${this.#prefix}')`);
  }

  async describe(): Promise<Record<string, unknown>> {
    const workers = await this.#queues!.video.getWorkersCount().catch(() => undefined);
    return { mode: 'queue', queue: redactRedisUrl(this.url), redis: this.#redis?.status, workers };
  }

  async captions(prompts: string[], signal: AbortSignal): Promise<Record<string, HostTensor>> {
    return this.#roleRequest('caption', { prompts }, signal);
  }

  async decode(samples: HostTensor | undefined, names: readonly string[], signal: AbortSignal): Promise<Record<string, HostTensor>> {
    if (samples === undefined) throw new HttpError(400, 'missing_tensor', `the body must hold a tensor named 'samples' [B, F, z, h, w] (found: ${names.join(', ') || 'none'})`);
    // The worker checks the shape against its VAE; the tensor travels through the shared folder, not Redis.
    const upload = `.upload-${randomUUID()}.safetensors`;
    await writeSafetensors(path.join(this.#resultsDir, upload), { samples });
    try {
      return await this.#roleRequest('vae', { upload }, signal);
    } finally {
      await rm(path.join(this.#resultsDir, upload), { force: true });
    }
  }

  /** A caption or VAE request as a job; the reply is a safetensors file the worker wrote to the shared folder. */
  async #roleRequest(role: 'caption' | 'vae', data: RoleJobData, signal: AbortSignal): Promise<Record<string, HostTensor>> {
    const queue = this.#queues![role];
    // A request nobody would answer fails now rather than at the timeout.
    if ((await queue.getWorkersCount().catch(() => 1)) === 0) throw new HttpError(503, 'no_worker', `no worker takes ${role} requests: start one with stepvideo worker --roles ${role} (or the default roles)`, { 'retry-after': '30' });
    const job = await queue.add(role, data, { jobId: randomUUID(), attempts: 1, removeOnComplete: true, removeOnFail: true });
    const onAbort = () => void job.remove().catch(() => undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    let reply: RoleJobReturn;
    try {
      reply = (await job.waitUntilFinished(this.#events![role], this.#options.roleTimeoutMs ?? 600_000)) as RoleJobReturn;
    } catch (error) {
      const { code, message } = decodeFailure((error as Error).message);
      throw new HttpError(code === 'worker_failed' ? 502 : statusFromCode(code), code, message);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    if (!/^\.reply-[0-9a-f-]{36}\.safetensors$/.test(reply.reply)) throw new HttpError(502, 'bad_reply', 'a worker replied with an invalid file name');
    const file = path.join(this.#resultsDir, reply.reply);
    try {
      return Object.fromEntries(await readSafetensors(file));
    } finally {
      await rm(file, { force: true });
    }
  }

  async close(): Promise<void> {
    await this.#jobs?.close();
    await Promise.allSettled([...Object.values(this.#events ?? {}).map((e) => e.close()), ...Object.values(this.#queues ?? {}).map((q) => q.close())]);
    this.#subscriber?.disconnect();
    this.#redis?.disconnect();
  }
}

/** The HTTP status of a worker's failure code (the codes of errorBody). */
function statusFromCode(code: string): number {
  if (code === 'cancelled') return 499;
  if (code === 'ERR_OOM' || code === 'ERR_CUDA_OOM') return 507;
  return /^(ERR_ARGUMENT|ERR_SHAPE|ERR_DTYPE|ERR_NOT_FINITE|ERR_USAGE|invalid_field|missing_tensor|bad_shape|out_of_range|not_finite|bad_dtype|bad_safetensors)$/.test(code) ? 400 : 500;
}

/** Video jobs in Redis. Every read goes to Redis: API nodes keep no job state of their own. */
class RedisJobs implements VideoJobs {
  readonly #queue: Queue;
  readonly #events: QueueEvents;
  readonly #redis: Redis;
  readonly #subscriber: Redis;
  readonly #prefix: string;
  readonly #limits: ServerLimits;
  readonly #resultsDir: string;
  readonly #attempts: number;
  readonly #listeners = new Map<string, Set<(event: JobEvent) => void>>();
  #closed = false;

  constructor(queue: Queue, events: QueueEvents, redis: Redis, subscriber: Redis, options: QueueBackendOptions & { prefix: string; limits: ServerLimits; resultsDir: string }) {
    this.#queue = queue;
    this.#events = events;
    this.#redis = redis;
    this.#subscriber = subscriber;
    this.#prefix = options.prefix;
    this.#limits = options.limits;
    this.#resultsDir = options.resultsDir;
    this.#attempts = options.attempts ?? 2;
  }

  async start(): Promise<void> {
    const statusOf = (jobId: string) => void this.#notify(jobId);
    this.#events.on('active', ({ jobId }) => statusOf(jobId));
    this.#events.on('waiting', ({ jobId }) => statusOf(jobId));
    this.#events.on('completed', ({ jobId }) => statusOf(jobId));
    this.#events.on('failed', ({ jobId }) => statusOf(jobId));
    this.#events.on('progress', ({ jobId, data }) => void this.#notify(jobId, data as unknown as PipelineProgress));
    const previews = previewChannel(this.#prefix);
    this.#subscriber.on('message', (channel: string, message: string) => {
      if (channel === previews) void this.#preview(message);
      // A cancelled queued job has no BullMQ event until a worker drops it: tell this node's listeners now.
      else statusOf(message);
    });
    await this.#subscriber.subscribe(cancelChannel(this.#prefix), previews);
  }

  async submit(request: VideoJobRequest): Promise<JobView> {
    if (this.#closed) throw new HttpError(503, 'shutting_down', 'the server is shutting down');
    const waiting = await this.#redisCall(() => this.#queue.getJobCountByTypes(...QUEUED_TYPES));
    if (waiting >= this.#limits.maxQueued) throw queueFull(waiting);
    // The seed is fixed here, so a job retried on another worker makes the same video.
    const fixed: VideoJobRequest = { ...request, seed: request.seed ?? randomSeed() };
    const id = randomUUID();
    const data: VideoJobData = { request: fixed };
    await this.#redisCall(() => this.#queue.add('video', data, { jobId: id, attempts: this.#attempts, backoff: { type: 'fixed', delay: 1000 } }));
    void this.#forgetOldest().catch(() => undefined);
    return { id, request: fixed, status: 'queued', createdAt: new Date(), seed: BigInt(fixed.seed!) };
  }

  async get(id: string): Promise<JobView | undefined> {
    if (!isJobId(id)) return undefined;
    return this.#redisCall(async () => {
      // The state first, then the record: a record read before its job failed would lack the reason.
      const state = await this.#queue.getJobState(id);
      const job = await this.#queue.getJob(id);
      if (job === undefined || job.name !== 'video') return undefined;
      const cancelled = state !== 'completed' && state !== 'failed' && state !== 'active' ? await this.#redis.get(cancelKey(this.#prefix, id)) : null;
      return this.#view(job, state, cancelled);
    });
  }

  async list(): Promise<JobView[]> {
    return this.#redisCall(async () => {
      const groups = await Promise.all([
        this.#queue.getJobs(QUEUED_TYPES).then((jobs) => jobs.map((job) => [job, 'waiting'] as const)),
        ...(['active', 'completed', 'failed'] as const).map((state) => this.#queue.getJobs([state]).then((jobs) => jobs.map((job) => [job, state] as const))),
      ]);
      const entries = groups.flat().filter(([job]) => job !== undefined && isJobId(job.id) && job.name === 'video') as [BullJob, string][];
      const queuedIds = entries.filter(([, state]) => state === 'waiting').map(([job]) => job.id!);
      const marks = queuedIds.length > 0 ? await this.#redis.mget(queuedIds.map((id) => cancelKey(this.#prefix, id))) : [];
      const cancelled = new Map(queuedIds.map((id, i) => [id, marks[i] ?? null]));
      return entries.map(([job, state]) => this.#view(job, state, cancelled.get(job.id!) ?? null));
    });
  }

  async cancel(id: string): Promise<JobView> {
    const job = await this.get(id);
    if (job === undefined) throw unknownJob(id);
    if (isFinished(job.status)) throw jobFinished(job);
    await this.#redisCall(async () => {
      await this.#redis.set(cancelKey(this.#prefix, id), String(Date.now()), 'EX', CANCEL_TTL_S);
      await this.#redis.publish(cancelChannel(this.#prefix), id);
    });
    return (await this.get(id)) ?? job;
  }

  async remove(id: string): Promise<void> {
    let view = await this.get(id);
    if (view === undefined) throw unknownJob(id);
    if (!isFinished(view.status)) view = await this.cancel(id);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const job = await this.#redisCall(() => this.#queue.getJob(id));
      if (job === undefined) break;
      // A queued job goes at once; a running one once its worker has stopped it (its lock refuses removal before).
      const removed = await job.remove().then(() => true, () => false);
      if (removed) break;
      if (Date.now() > deadline) throw new HttpError(504, 'cancel_pending', `job '${id}' was cancelled but its worker has not stopped it yet; try again`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await this.#redisCall(() => this.#redis.del(cancelKey(this.#prefix, id)));
    if (view.result) await rm(view.result.path, { force: true });
  }

  subscribe(id: string, listener: (event: JobEvent) => void): () => void {
    let set = this.#listeners.get(id);
    if (set === undefined) this.#listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0) this.#listeners.delete(id);
    };
  }

  async counts(): Promise<{ running: number; waiting: number }> {
    return this.#redisCall(async () => ({ running: await this.#queue.getActiveCount(), waiting: await this.#queue.getJobCountByTypes(...QUEUED_TYPES) }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
  }

  async #preview(message: string): Promise<void> {
    let preview: JobPreview & { id?: unknown };
    try {
      preview = JSON.parse(message) as JobPreview & { id?: unknown };
    } catch {
      return;
    }
    const { id, ...rest } = preview;
    if (!isJobId(id) || !this.#listeners.has(id) || typeof rest.png !== 'string') return;
    const job = await this.get(id).catch(() => undefined);
    if (job === undefined) return;
    for (const listener of this.#listeners.get(id) ?? []) listener({ type: 'preview', job, preview: rest });
  }

  async #notify(id: string, progress?: PipelineProgress): Promise<void> {
    if (!this.#listeners.has(id)) return;
    const job = await this.get(id).catch(() => undefined);
    if (job === undefined) return;
    for (const listener of this.#listeners.get(id) ?? []) listener(progress !== undefined ? { type: 'progress', job, progress } : { type: 'status', job });
  }

  #view(job: BullJob, state: string, cancelledAt: string | null): JobView {
    const { request } = job.data as VideoJobData;
    let status: JobStatus = STATE_OF[state] ?? 'queued';
    const error = job.failedReason ? decodeFailure(job.failedReason) : undefined;
    if (status === 'failed' && error?.code === 'cancelled') status = 'cancelled';
    if (status === 'queued' && cancelledAt !== null) status = 'cancelled';
    const returned = status === 'succeeded' ? (job.returnvalue as VideoJobReturn | null) : null;
    const view: JobView = { id: job.id!, request, status, createdAt: new Date(job.timestamp) };
    if (job.processedOn) view.startedAt = new Date(job.processedOn);
    if (job.finishedOn) view.finishedAt = new Date(job.finishedOn);
    else if (status === 'cancelled' && cancelledAt !== null) view.finishedAt = new Date(Number(cancelledAt));
    // A stopped job keeps its last progress (how far it got), as in a single process.
    if ((status === 'running' || status === 'failed' || status === 'cancelled') && typeof job.progress === 'object' && job.progress !== null) view.progress = job.progress as unknown as PipelineProgress;
    if (status === 'failed' || status === 'cancelled') view.error = error ?? { code: 'cancelled', message: 'cancelled by the client' };
    const seed = returned?.seed ?? request.seed;
    if (seed !== undefined) view.seed = BigInt(seed);
    if (returned) {
      view.size = returned.size;
      // The file name comes from Redis: only the one name this job may have is accepted.
      if (returned.file === `${job.id}.${request.format}`) view.result = { path: path.join(this.#resultsDir, returned.file), bytes: returned.bytes };
    }
    return view;
  }

  /** Keeps at most maxFinished finished jobs; the oldest go, with their files. */
  async #forgetOldest(): Promise<void> {
    const finished = await this.#queue.getJobs(['completed', 'failed']);
    finished.sort((a, b) => (a.finishedOn ?? 0) - (b.finishedOn ?? 0));
    for (const job of finished.slice(0, Math.max(0, finished.length - this.#limits.maxFinished))) {
      const file = (job.returnvalue as VideoJobReturn | null)?.file;
      await job.remove().catch(() => undefined);
      if (isJobId(job.id) && file === `${job.id}.${(job.data as VideoJobData).request.format}`) await rm(path.join(this.#resultsDir, file), { force: true });
    }
  }

  /** A Redis command; an outage is a 503 with Retry-After (the connection comes back by itself). */
  async #redisCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw new HttpError(503, 'queue_unavailable', `the job queue (Redis) is not reachable: ${(error as Error).message}`, { 'retry-after': '5' });
    }
  }
}

/** A seed in [0, 2^48): exact as a JSON number. */
function randomSeed(): number {
  return randomBytes(6).readUIntBE(0, 6);
}
