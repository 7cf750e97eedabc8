// The single-process backend of `stepvideo serve`: video jobs, captions and VAE decoding all run on
// the one pipeline loaded in this process. Nothing to install beyond the package.
import { stat } from 'node:fs/promises';
import path from 'node:path';

import type { HostTensor } from '../io/safetensors.js';
import type { GenerateOptions, StepVideo } from '../pipeline/pipeline.js';
import type { PipelineProgress } from '../pipeline/progress.js';
import { type Job, type JobPreview, JobQueue, type JobResult } from './jobs.js';
import type { ServerLimits } from './requests.js';
import { checkVaeSamples } from './tensors.js';
import type { ServerBackend } from './backend.js';

export class LocalBackend implements ServerBackend {
  readonly pipeline: StepVideo;
  readonly #limits: ServerLimits;
  readonly #log: (line: string) => void;
  #jobs: JobQueue | undefined;
  #resultsDir: string | undefined;

  readonly #previewEvery: number;

  /** `previewEvery`: steps between live previews on the event streams (0: none). */
  constructor(pipeline: StepVideo, limits: ServerLimits, log: (line: string) => void = () => undefined, previewEvery = 0) {
    this.pipeline = pipeline;
    this.#limits = limits;
    this.#log = log;
    this.#previewEvery = previewEvery;
  }

  get jobs(): JobQueue {
    if (this.#jobs === undefined) throw new Error('the backend is not open (call open(resultsDir) first)');
    return this.#jobs;
  }

  async open(resultsDir: string): Promise<void> {
    this.#resultsDir = resultsDir;
    this.#jobs = new JobQueue((job, signal, onProgress, onPreview) => this.#runJob(job, signal, onProgress, onPreview), { maxQueued: this.#limits.maxQueued, maxFinished: this.#limits.maxFinished });
  }

  async describe(): Promise<Record<string, unknown>> {
    return { mode: 'single-process', device: this.pipeline.device.name, builtin: this.pipeline.builtin };
  }

  async captions(prompts: string[], signal: AbortSignal): Promise<Record<string, HostTensor>> {
    return { ...(await this.pipeline.encodeCaptions(prompts, { signal })) };
  }

  async decode(samples: HostTensor | undefined, names: readonly string[], signal: AbortSignal): Promise<Record<string, HostTensor>> {
    const values = checkVaeSamples(samples, this.pipeline.vae.config.zChannels, this.#limits, names);
    return { samples: await this.pipeline.decodeLatents(values, samples!.shape, { signal }) };
  }

  async close(): Promise<void> {
    await this.#jobs?.close();
  }

  async #runJob(job: Job, signal: AbortSignal, onProgress: (p: PipelineProgress) => void, onPreview: (preview: JobPreview) => void): Promise<JobResult> {
    const { format, crop, model: _model, seconds: _seconds, sizeText: _sizeText, ...request } = job.request;
    this.#log(`job ${job.id} started`);
    const video = await this.pipeline.generate({ ...request, crop, signal, onProgress, ...previewOptions(this.#previewEvery, onPreview) });
    job.seed = video.info.seed;
    job.size = { frames: video.info.frames, height: video.info.height, width: video.info.width };
    const written = await video.save(path.join(this.#resultsDir!, `${job.id}.${format}`), { format, signal });
    const { size } = await stat(written);
    this.#log(`job ${job.id} done: ${size} bytes`);
    return { path: written, bytes: size };
  }
}

/** The previews a server job asks the pipeline for: small ones (128 px) every `every` steps, as base64 PNG. */
export function previewOptions(every: number, onPreview: (preview: JobPreview) => void): Pick<GenerateOptions, 'onPreview' | 'previewEvery' | 'previewSize'> {
  if (every <= 0) return {};
  return { previewEvery: every, previewSize: 128, onPreview: (p) => onPreview({ step: p.step, total: p.total, width: p.width, height: p.height, png: p.png.toString('base64') }) };
}

