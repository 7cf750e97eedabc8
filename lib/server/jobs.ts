// The server's video jobs: a FIFO queue with one worker (one GPU job at a time), each job's status
// and latest progress, cancellation (a queued job is dropped, a running one aborted through its
// signal), listeners for server-sent events, and a bounded history of finished jobs.
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
  error?: { code: string; message: string };
  result?: JobResult;
  readonly controller: AbortController;
}

export type JobEvent = { type: 'status'; job: Job } | { type: 'progress'; job: Job; progress: PipelineProgress };

/** Runs one job to a file; rejects with ERR_ABORTED when `signal` fires. */
export type JobRunner = (job: Job, signal: AbortSignal, onProgress: (progress: PipelineProgress) => void) => Promise<JobResult>;

export const isFinished = (status: JobStatus): boolean => status === 'succeeded' || status === 'failed' || status === 'cancelled';

export class JobQueue {
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

  submit(request: VideoJobRequest): Job {
    if (this.#closed) throw new HttpError(503, 'shutting_down', 'the server is shutting down');
    if (this.#waiting.length >= this.#maxQueued) throw new HttpError(503, 'queue_full', `${this.#waiting.length} jobs are already waiting; try again later`, { 'retry-after': '30' });
    const job: Job = { id: randomUUID(), request, status: 'queued', createdAt: new Date(), controller: new AbortController() };
    if (request.seed !== undefined) job.seed = BigInt(request.seed);
    this.#jobs.set(job.id, job);
    this.#waiting.push(job);
    // Started on the next turn, so the caller (the POST reply) sees the job as queued.
    setImmediate(() => this.#pump());
    return job;
  }

  get(id: string): Job | undefined {
    return this.#jobs.get(id);
  }

  list(): Job[] {
    return [...this.#jobs.values()];
  }

  /** Cancels a queued or running job (a running one stops at its next check); a finished one is a 409. */
  cancel(id: string): Job {
    const job = this.#jobs.get(id);
    if (job === undefined) throw new HttpError(404, 'unknown_job', `no job '${id}'`);
    if (isFinished(job.status)) throw new HttpError(409, 'job_finished', `job '${id}' has already ${job.status}`);
    if (job.status === 'queued') {
      this.#waiting.splice(this.#waiting.indexOf(job), 1);
      this.#finish(job, 'cancelled');
    } else {
      job.controller.abort(new Error('cancelled by the client'));
    }
    return job;
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
      job.result = await this.#run(job, job.controller.signal, (progress) => {
        job.progress = progress;
        this.#emit({ type: 'progress', job, progress });
      });
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
