// `stepvideo worker --queue URL`: takes jobs from the Redis queue and runs them on the pipeline
// loaded in this process, one GPU per worker. Videos are written under a temporary name and renamed
// into the shared results folder, so a reader never sees part of one; a job's record completes once
// (BullMQ refuses a completion from a worker that lost the job's lock).
//
// Faults, and what happens:
// - this process is killed: its job's lock expires after `stallTimeoutMs`; another worker's stall
//   check puts the job back on the queue and runs it again (same seed, fixed by the API node);
// - a cancel: every worker hears it on a pub/sub channel, the one running the job aborts it at once
//   (the pipeline stops at its next block and frees its memory); a job cancelled while queued is
//   dropped by whichever worker takes it;
// - SIGTERM (stop()): no new jobs; the running one finishes within the grace period, or is handed
//   back to the queue for another worker;
// - bad input (a 4xx-class error): the job fails once, never retried; other errors are retried up
//   to the attempts the API node set, then fail.
import { randomUUID } from 'node:crypto';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';

import type { Job as BullJob, Worker } from 'bullmq';
import type { Redis } from 'ioredis';

import { readSafetensors, writeSafetensors } from '../../io/safetensors.js';
import type { StepVideo } from '../../pipeline/pipeline.js';
import type { PipelineProgress } from '../../pipeline/progress.js';
import { errorBody } from '../http.js';
import type { JobPreview } from '../jobs.js';
import { previewOptions } from '../local.js';
import { DEFAULT_LIMITS, type ServerLimits, type VideoJobRequest, parseCaptionRequest, parseVideoRequest } from '../requests.js';
import { checkVaeSamples } from '../tensors.js';
import {
  DEFAULT_PREFIX,
  QUEUE_NAMES,
  type QueueLibraries,
  ROLES,
  type Role,
  type RoleJobData,
  type RoleJobReturn,
  type VideoJobData,
  type VideoJobReturn,
  cancelChannel,
  cancelKey,
  checkRedisUrl,
  connect,
  encodeFailure,
  isJobId,
  loadQueueLibraries,
  previewChannel,
  redactRedisUrl,
} from './connection.js';

export interface WorkerOptions {
  /** The redis:// or rediss:// URL. */
  queue: string;
  /** The results folder shared with the API nodes. */
  resultsDir: string;
  /** Jobs run at once by this process (default 1: one job per GPU). */
  concurrency?: number;
  /** Which queues this worker takes (default all three). */
  roles?: readonly Role[];
  /** How long a job's lock lives without renewal: a dead worker's job goes to another after this (default 30 s). */
  stallTimeoutMs?: number;
  /** A job whose worker died this many times fails (default 2). */
  maxStalls?: number;
  /** Steps between live previews published to the API nodes' event streams (default 0: none). */
  previewEvery?: number;
  /** The checks a job's request must pass here too (a queue can hold jobs from other API nodes). */
  limits?: Partial<ServerLimits>;
  prefix?: string;
  log?: (line: string) => void;
}

/** Progress goes to Redis at most this often, stage changes always. */
const PROGRESS_INTERVAL_MS = 250;

/** Where a job stands with its worker; `handedBack` when shutdown returned it to the queue. */
interface Running {
  handedBack: boolean;
}

export class StepVideoWorker {
  readonly pipeline: StepVideo;
  readonly #options: WorkerOptions;
  readonly #limits: ServerLimits;
  readonly #prefix: string;
  readonly #running = new Map<string, Running>();
  readonly #handBack = new AbortController();
  #libraries: QueueLibraries | undefined;
  #redis: Redis | undefined;
  #subscriber: Redis | undefined;
  #workers: Worker[] = [];
  #unrecoverable: (new (message: string) => Error) | undefined;
  #waitingError: (new () => Error) | undefined;

  constructor(pipeline: StepVideo, options: WorkerOptions) {
    checkRedisUrl(options.queue);
    this.pipeline = pipeline;
    this.#options = options;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#prefix = options.prefix ?? DEFAULT_PREFIX;
  }

  /** Connects and starts taking jobs. */
  async start(): Promise<void> {
    const libraries = (this.#libraries = await loadQueueLibraries());
    const { Worker, UnrecoverableError, WaitingError } = libraries.bullmq;
    this.#unrecoverable = UnrecoverableError;
    this.#waitingError = WaitingError;
    const url = this.#options.queue;
    this.#redis = connect(libraries, url, 'blocking');
    this.#subscriber = connect(libraries, url, 'blocking');
    this.#subscriber.on('message', (_channel: string, id: string) => {
      for (const worker of this.#workers) worker.cancelJob(id, 'cancelled by the client');
    });
    await this.#subscriber.subscribe(cancelChannel(this.#prefix));
    const lockDuration = this.#options.stallTimeoutMs ?? 30_000;
    for (const role of this.#options.roles ?? ROLES) {
      const worker = new Worker(QUEUE_NAMES[role], (job, token, signal) => this.#process(role, job, token, signal), {
        connection: connect(libraries, url, 'blocking'),
        prefix: this.#prefix,
        concurrency: role === 'video' ? (this.#options.concurrency ?? 1) : 1,
        lockDuration,
        stalledInterval: Math.max(500, Math.floor(lockDuration / 2)),
        maxStalledCount: this.#options.maxStalls ?? 2,
        autorun: false,
      });
      worker.on('error', (error) => this.#log(`queue error: ${error.message}`));
      this.#workers.push(worker);
    }
    for (const worker of this.#workers) void worker.run().catch((error: Error) => this.#log(`worker stopped: ${error.message}`));
    await Promise.all(this.#workers.map((w) => w.waitUntilReady()));
    this.#log(`taking ${(this.#options.roles ?? ROLES).join(', ')} jobs from ${redactRedisUrl(url)} on ${this.pipeline.device.name}`);
  }

  /** Jobs running in this process now. */
  get running(): number {
    return this.#running.size;
  }

  /**
   * Takes no new jobs; lets the running ones finish for up to `graceMs`, then hands them back to the
   * queue for another worker. Resolves once every connection is closed.
   */
  async stop(graceMs = 0): Promise<void> {
    const timer = setTimeout(() => this.#handBack.abort(new Error('the worker is shutting down')), graceMs);
    try {
      await Promise.all(this.#workers.map((w) => w.close()));
    } finally {
      clearTimeout(timer);
      this.#subscriber?.disconnect();
      this.#redis?.disconnect();
    }
  }

  async #process(role: Role, job: BullJob, token: string | undefined, signal: AbortSignal | undefined): Promise<VideoJobReturn | RoleJobReturn> {
    if (!isJobId(job.id)) throw new this.#unrecoverable!(encodeFailure('invalid_job', `job id '${job.id}' is not one an API node makes`));
    const running: Running = { handedBack: false };
    this.#running.set(job.id, running);
    const abort = AbortSignal.any([...(signal ? [signal] : []), this.#handBack.signal]);
    try {
      if (role === 'video') return await this.#video(job, abort);
      return await this.#role(role, job.data as RoleJobData, abort);
    } catch (error) {
      // Already a verdict (a job dropped as cancelled or invalid): as it is.
      if (error instanceof this.#unrecoverable!) {
        this.#log(`job ${job.id} failed: ${error.message}`);
        throw error;
      }
      if (this.#handBack.signal.aborted && !signal?.aborted && role === 'video' && token !== undefined) {
        // Back to the queue, keeping its attempts: it was not its fault.
        await job.moveToWait(token);
        running.handedBack = true;
        this.#log(`job ${job.id} handed back to the queue`);
        throw new this.#waitingError!();
      }
      if (signal?.aborted) {
        this.#log(`job ${job.id} failed: cancelled`);
        throw new this.#unrecoverable!(encodeFailure('cancelled', String(signal.reason ?? 'cancelled by the client')));
      }
      const { status, code, message } = errorBody(error).error;
      this.#log(`job ${job.id} failed: ${code}: ${message}`);
      // A request error fails the same way on every worker: never retried.
      if (status < 500) throw new this.#unrecoverable!(encodeFailure(code, message));
      throw new Error(encodeFailure(code, message));
    } finally {
      this.#running.delete(job.id);
    }
  }

  async #video(job: BullJob, signal: AbortSignal): Promise<VideoJobReturn> {
    const id = job.id!;
    if ((await this.#redis!.exists(cancelKey(this.#prefix, id))) === 1) {
      throw new this.#unrecoverable!(encodeFailure('cancelled', 'cancelled by the client while queued'));
    }
    const request = this.#checkRequest((job.data as VideoJobData).request);
    await this.#sweepPartials(id);
    this.#log(`job ${id} started (attempt ${job.attemptsStarted})`);
    const { format, crop, model: _model, seconds: _seconds, sizeText: _sizeText, ...generate } = request;
    const channel = previewChannel(this.#prefix);
    const publish = (preview: JobPreview) => void this.#redis!.publish(channel, JSON.stringify({ id, ...preview })).catch(() => undefined);
    const video = await this.pipeline.generate({ ...generate, crop, signal, onProgress: this.#progressReporter(job), ...previewOptions(this.#options.previewEvery ?? 0, publish) });
    const file = `${id}.${format}`;
    const written = await video.save(path.join(this.#options.resultsDir, file), { format, signal });
    const { size: bytes } = await stat(written);
    this.#log(`job ${id} done: ${bytes} bytes`);
    return { file, bytes, seed: video.info.seed.toString(), size: { frames: video.info.frames, height: video.info.height, width: video.info.width } };
  }

  async #role(role: 'caption' | 'vae', data: RoleJobData, signal: AbortSignal): Promise<RoleJobReturn> {
    const reply = `.reply-${randomUUID()}.safetensors`;
    if (role === 'caption') {
      const prompts = parseCaptionRequest({ prompts: data.prompts }, this.#limits);
      await writeSafetensors(path.join(this.#options.resultsDir, reply), { ...(await this.pipeline.encodeCaptions(prompts, { signal })) });
      return { reply };
    }
    if (typeof data.upload !== 'string' || !/^\.upload-[0-9a-f-]{36}\.safetensors$/.test(data.upload)) throw new this.#unrecoverable!(encodeFailure('invalid_job', 'a VAE job must name an upload in the results folder'));
    const tensors = await readSafetensors(path.join(this.#options.resultsDir, data.upload));
    const samples = tensors.get('samples');
    const values = checkVaeSamples(samples, this.pipeline.vae.config.zChannels, this.#limits, [...tensors.keys()]);
    const frames = await this.pipeline.decodeLatents(values, samples!.shape, { signal });
    await writeSafetensors(path.join(this.#options.resultsDir, reply), { samples: frames });
    return { reply };
  }

  /** The request checked again with this worker's limits (the API node's may differ, or be older). */
  #checkRequest(request: VideoJobRequest): VideoJobRequest {
    if (typeof request !== 'object' || request === null) throw new this.#unrecoverable!(encodeFailure('invalid_job', 'the job carries no request'));
    const { model, seconds, sizeText, ...fields } = request;
    return { ...parseVideoRequest(fields as unknown as Record<string, unknown>, this.#limits), ...(model !== undefined ? { model } : {}), ...(seconds !== undefined ? { seconds } : {}), ...(sizeText !== undefined ? { sizeText } : {}) };
  }

  /** Temporary files an earlier attempt at this job left behind when its worker died. */
  async #sweepPartials(id: string): Promise<void> {
    const names = await readdir(this.#options.resultsDir).catch(() => [] as string[]);
    await Promise.all(names.filter((name) => name.startsWith(`.${id}.`) && name.includes('.tmp-')).map((name) => rm(path.join(this.#options.resultsDir, name), { force: true })));
  }

  #progressReporter(job: BullJob): (progress: PipelineProgress) => void {
    let last = 0;
    let lastStage = '';
    return (progress) => {
      const now = Date.now();
      if (progress.stage === lastStage && now - last < PROGRESS_INTERVAL_MS) return;
      last = now;
      lastStage = progress.stage;
      const { path: _path, ...rest } = progress as PipelineProgress & { path?: string };
      // Progress is advisory: a Redis hiccup must not fail the job.
      void job.updateProgress(rest as unknown as object).catch(() => undefined);
    };
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}
