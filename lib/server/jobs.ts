// The server's video jobs. `VideoJobs` is what the HTTP layer asks of them; `JobQueue` is the
// single-process kind: a FIFO queue with one worker (one GPU job at a time), each job's status and
// latest progress, cancellation (a queued job is dropped, a running one aborted through its signal),
// listeners for server-sent events, and a bounded history of finished jobs. The Redis kind, for
// API nodes and workers on several machines, is lib/server/queue/.
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';

import { isStepVideoError } from '../errors.js';
import type { PipelineProgress } from '../pipeline/progress.js';
import { HttpError, errorBody } from './http.js';
import type { VideoJobRequest } from './requests.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface JobResult {
  path: string;
  bytes: number;
}

export interface Job {
  readonly id: string;
  readonly request: VideoJobRequest;
  status: JobStatus;
  readonly createdAt: Date;
  startedAt?: Date;
  finishedAt?: Date;
  /** The latest progress report while running. */
  progress?: PipelineProgress;
  seed?: bigint;
  /** The size the job runs at once the runner has resolved it (frames floored to 17, sides to 16). */
  size?: { frames: number; height: number; width: number };
  error?: { code: string; message: string };
  result?: JobResult;
  readonly controller: AbortController;
}

/** A job as the HTTP layer sees it (the single-process queue's own Job, or one read from Redis). */
export type JobView = Omit<Job, 'controller'>;

/** A live preview as the event stream carries it: a small PNG, base64. */
export interface JobPreview {
  step: number;
  total: number;
  width: number;
  height: number;
  png: string;
}

export type JobEvent = { type: 'status'; job: JobView } | { type: 'progress'; job: JobView; progress: PipelineProgress } | { type: 'preview'; job: JobView; preview: JobPreview };

/** The video jobs behind the HTTP routes, wherever they run. */
export interface VideoJobs {
  submit(request: VideoJobRequest): Promise<JobView>;
  get(id: string): Promise<JobView | undefined>;
  list(): Promise<JobView[]>;
  /** Cancels a queued or running job; a finished one is a 409, an unknown one a 404. */
  cancel(id: string): Promise<JobView>;
  /** Forgets a job and deletes its video, cancelling it first when it has not finished. */
  remove(id: string): Promise<void>;
  /** Events of one job until it finishes; returns the unsubscribe function. */
  subscribe(id: string, listener: (event: JobEvent) => void): () => void;
  counts(): Promise<{ running: number; waiting: number }>;
  /** Refuses new jobs and stops this process's part in running ones. */
  close(): Promise<void>;
}

/** A full queue: 429 with the time to wait, as rate-limited clients (the OpenAI SDK among them) expect. */
export function queueFull(waiting: number, retryAfterS = 30): HttpError {
  return new HttpError(429, 'queue_full', `${waiting} jobs are already waiting; try again later`, { 'retry-after': String(retryAfterS) });
}

export function unknownJob(id: string): HttpError {
  return new HttpError(404, 'unknown_job', `no job '${id}'`);
}

export function jobFinished(job: JobView): HttpError {
  return new HttpError(409, 'job_finished', `job '${job.id}' has already ${job.status}`);
}

/** Runs one job to a file; rejects with ERR_ABORTED when `signal` fires. */
export type JobRunner = (job: Job, signal: AbortSignal, onProgress: (progress: PipelineProgress) => void, onPreview: (preview: JobPreview) => void) => Promise<JobResult>;

export const isFinished = (status: JobStatus): boolean => status === 'succeeded' || status === 'failed' || status === 'cancelled';

export class JobQueue implements VideoJobs {
  readonly #jobs = new Map<string, Job>();
  readonly #waiting: Job[] = [];
  readonly #listeners = new Map<string, Set<(event: JobEvent) => void>>();
  readonly #run: JobRunner;
  readonly #maxQueued: number;
  readonly #maxFinished: number;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(run: JobRunner, options: { maxQueued: number; maxFinished: number }) {
    this.#run = run;
    this.#maxQueued = options.maxQueued;
    this.#maxFinished = options.maxFinished;
  }

  get waiting(): number {
    return this.#waiting.length;
  }

  get busy(): boolean {
    return this.#running !== undefined;
  }

  async counts(): Promise<{ running: number; waiting: number }> {
    return { running: this.busy ? 1 : 0, waiting: this.waiting };
  }

  async submit(request: VideoJobRequest): Promise<Job> {
    if (this.#closed) throw new HttpError(503, 'shutting_down', 'the server is shutting down');
    if (this.#waiting.length >= this.#maxQueued) throw queueFull(this.#waiting.length);
    const job: Job = { id: randomUUID(), request, status: 'queued', createdAt: new Date(), controller: new AbortController() };
    if (request.seed !== undefined) job.seed = BigInt(request.seed);
    this.#jobs.set(job.id, job);
    this.#waiting.push(job);
    // Started on the next turn, so the caller (the POST reply) sees the job as queued.
    setImmediate(() => this.#pump());
    return job;
  }

  async get(id: string): Promise<Job | undefined> {
    return this.#jobs.get(id);
  }

  async list(): Promise<Job[]> {
    return [...this.#jobs.values()];
  }

  /** Cancels a queued or running job (a running one stops at its next check); a finished one is a 409. */
  async cancel(id: string): Promise<Job> {
    const job = this.#jobs.get(id);
    if (job === undefined) throw unknownJob(id);
    if (isFinished(job.status)) throw jobFinished(job);
    if (job.status === 'queued') {
      this.#waiting.splice(this.#waiting.indexOf(job), 1);
      this.#finish(job, 'cancelled');
    } else {
      job.controller.abort(new Error('cancelled by the client'));
    }
    return job;
  }

  async remove(id: string): Promise<void> {
    const job = this.#jobs.get(id);
    if (job === undefined) throw unknownJob(id);
    if (!isFinished(job.status)) {
      const finished = new Promise<void>((resolve) => {
        const unsubscribe = this.subscribe(id, (event) => {
          if (event.type === 'status' && isFinished(event.job.status)) {
            unsubscribe();
            resolve();
          }
        });
      });
      await this.cancel(id);
      await finished;
    }
    this.#jobs.delete(id);
    if (job.result) await rm(job.result.path, { force: true });
  }

  /** Events of one job until it finishes; returns the unsubscribe function. */
  subscribe(id: string, listener: (event: JobEvent) => void): () => void {
    let set = this.#listeners.get(id);
    if (set === undefined) this.#listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => set!.delete(listener);
  }

  /** Refuses new jobs, cancels the waiting ones, aborts the running one and waits for it. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const job of this.#waiting.splice(0)) this.#finish(job, 'cancelled');
    for (const job of this.#jobs.values()) if (job.status === 'running') job.controller.abort(new Error('the server is shutting down'));
    await this.#running;
  }

  #emit(event: JobEvent): void {
    for (const listener of this.#listeners.get(event.job.id) ?? []) listener(event);
  }

  #pump(): void {
    if (this.#running !== undefined || this.#closed) return;
    const job = this.#waiting.shift();
    if (job === undefined) return;
    this.#running = this.#execute(job).finally(() => {
      this.#running = undefined;
      this.#pump();
    });
  }

  async #execute(job: Job): Promise<void> {
    job.status = 'running';
    job.startedAt = new Date();
    this.#emit({ type: 'status', job });
    try {
      job.result = await this.#run(
        job,
        job.controller.signal,
        (progress) => {
          job.progress = progress;
          this.#emit({ type: 'progress', job, progress });
        },
        (preview) => this.#emit({ type: 'preview', job, preview }),
      );
      this.#finish(job, 'succeeded');
    } catch (error) {
      if (job.controller.signal.aborted || isStepVideoError(error, 'ERR_ABORTED')) {
        this.#finish(job, 'cancelled');
      } else {
        const { code, message } = errorBody(error).error;
        job.error = { code, message };
        this.#finish(job, 'failed');
      }
    }
  }

  #finish(job: Job, status: JobStatus): void {
    job.status = status;
    job.finishedAt = new Date();
    this.#emit({ type: 'status', job });
    this.#listeners.delete(job.id);
    this.#forgetOldest();
  }

  /** Keeps at most maxFinished finished jobs; the oldest go, with their files. */
  #forgetOldest(): void {
    const finished = [...this.#jobs.values()].filter((j) => isFinished(j.status));
    for (const job of finished.slice(0, Math.max(0, finished.length - this.#maxFinished))) {
      this.#jobs.delete(job.id);
      if (job.result) void rm(job.result.path, { force: true }).catch(() => undefined);
    }
  }
}
