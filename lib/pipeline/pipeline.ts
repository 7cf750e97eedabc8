// StepVideo: the whole text-to-video pipeline of the official run (spec §1) over one device.
//
//   await using sv = await StepVideo.load({ modelDir: '/models/stepvideo-t2v', device: 'cuda' });
//   const video = await sv.generate({ prompt: '...', seed: 42, onProgress: console.log });
//   await video.save('out.mp4');   // decodes chunk by chunk while ffmpeg encodes
//
// load() reads the released layout (transformer/, vae/, step_llm/, hunyuan_clip/; Turbo is the
// same layout), or, without a modelDir, the built-in test model. generate() encodes the prompt,
// samples the latents and returns a GeneratedVideo whose chunks decode on demand. Jobs on one
// instance take turns on the device (a FIFO lock around each stage); an aborted or failed job frees
// everything it allocated and leaves the instance ready for the next one.
import os from 'node:os';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

import { trimCudaPool } from '../device-stats.js';
import { Device, type DeviceSpec, getDevice } from '../device.js';
import { StepVideoError, isStepVideoError, throwIfAborted } from '../errors.js';
import type { HostTensor } from '../io/safetensors.js';
import { CaptionEncoder } from '../models/caption-encoder.js';
import { parseClipConfig } from '../models/clip/config.js';
import { type ComputeDType, resolveComputeDType } from '../models/compute-dtype.js';
import { type DiTParallelism, type DiTWeightFormat, ParallelDiT, StepVideoDiT, readDiTConfig } from '../models/dit/index.js';
import { ConfigJson } from '../models/json-config.js';
import { resolveModelRoot } from '../models/layout.js';
import { parseStepLlmConfig } from '../models/step-llm/config.js';
import { FRAMES_PER_CHUNK, LATENTS_PER_CHUNK, SPATIAL_FACTOR } from '../models/vae/config.js';
import { type DecodedChunk, VideoVAE, readVaeConfig } from '../models/vae/index.js';
import { latentShape } from '../sampler/noise.js';
import { type VelocityModel, sample } from '../sampler/sample.js';
import type { StepCacheOptions, TeaCacheCoefficients } from '../sampler/cache.js';
import { writeFileAtomic } from '../util/files.js';
import { LatentPreviewer, type PreviewEvent } from './preview.js';
import { LoraAdapter, parseLoraSpec } from '../models/dit/lora.js';
import { CalibrationRecorder, TEACACHE_FILE, type TeaCacheCalibration, fitTeaCache, readTeaCacheCoefficients } from '../sampler/calibrate.js';
import { Tensor } from '../tensor.js';
import { CLIP_TOKENS, LLM_TOKENS } from '../tokenizers/caption-lengths.js';
import { standard540pCrop } from '../video/frames.js';
import { BUILTIN_DEFAULT_VIDEO, ensureBuiltinModel } from './builtin/index.js';
import {
  LOAD_MARGIN,
  type MemoryEstimate,
  type ModelDims,
  type QueueModel,
  type StreamingRequest,
  computeBytes,
  estimateJobMemory,
  estimateLoadMemory,
  requireMemory,
  resolveStreaming,
} from './memory.js';
import { type JobRequest, type NormalizedVideoSize, RELEASED_DEFAULT_VIDEO, type VideoSizeRequest, normalizeVideoSize, resolveJob } from './options.js';
import { EtaTracker, type ModelPart, type PipelineProgress } from './progress.js';
import { GeneratedVideo, VIDEO_FPS } from './video.js';

export interface StepVideoLoadOptions {
  /** The released folder (or the Turbo one), or one of its folders (transformer/, hunyuan_clip/, ...). Without it: the built-in test model (tiny, random weights). */
  modelDir?: string;
  /** Default: cuda when a GPU answers (or STEPVIDEO_DEVICE), else the CPU. */
  device?: DeviceSpec;
  /** Compute dtype of the DiT, the VAE and Step-LLM: bf16 (default on CUDA, official) or f32 (the CPU's only one). Hunyuan-CLIP always computes in f32, as the official server does. */
  dtype?: ComputeDType;
  /**
   * How the DiT holds its block Linear weights (StepVideoDiT's `weights`): 'model' (default: the
   * compute dtype) or 'fp8' (e4m3 with one scale per output channel, quantized at load: about half
   * the bytes, 29.7 GB instead of 58.7 GB released). The CPU runs the FP8 Linear as its exact f32
   * twin: the accuracy of FP8 weights, not its speed.
   */
  weights?: DiTWeightFormat;
  /**
   * DiT weight streaming (StepVideoDiT's `streaming`): the block weights stay in pinned host memory
   * and two device slots are refilled block by block while the previous block computes. `true`
   * streams; `{ deviceBudgetBytes }` streams only when the DiT's resident weights would take more
   * device memory than that, and is ERR_ARGUMENT when even its streamed weights do not fit in it.
   * Default false. On the CPU it runs (in program order) but saves nothing: host and device memory
   * are one there (a warning says so).
   */
  streaming?: StreamingRequest;
  /**
   * Sequence parallelism of the DiT: each forward's tokens split over this many ranks (a divisor of
   * the 48 heads), Ulysses all-to-all around each self-attention. Default 1. In this version the
   * ranks share the pipeline's device (on the CPU: the simulation of several devices); the result
   * equals the single-rank one.
   */
  sequenceParallel?: number;
  /** The conditional and unconditional DiT rows on two groups of ranks (jobs with a cfg scale above 1). Default false. */
  cfgParallel?: boolean;
  /**
   * The device of each DiT rank, group-major (sequenceParallel ranks of the conditional group, then
   * those of the unconditional one with cfgParallel); the first is the pipeline's device, where the
   * text encoders and the VAE run. Each other device gets a replica of the DiT; ranks on one device
   * share it. Default: every rank on the pipeline's device. The ranks exchange by copies between
   * devices in this version (NCCL is next).
   */
  devices?: DeviceSpec[];
  /**
   * Where the caption encoders and the VAE run, when not on the pipeline's device: the official
   * stack's decoupling (a caption server and the VAE on GPUs of their own), so the DiT's device
   * holds only the DiT. Captions and latents are copied between the devices; memory is checked on
   * each device for what it holds. `vae` may list several devices: the VAE decodes there chunk by
   * chunk at once (a decoder replica on each but the first), its frames equal to one device's.
   */
  placement?: { text?: DeviceSpec; vae?: DeviceSpec | DeviceSpec[] };
  /** Folder for the built-in model (default: see defaultCacheDir()). */
  cacheDir?: string;
  /** A LoRA adapter every job applies unless it names its own (a safetensors file, lib/models/dit/lora.ts for the names). */
  lora?: LoraSpec;
  /** Check estimated memory against free memory before loading and before each job (default true). */
  checkMemory?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: PipelineProgress) => void;
  onWarning?: (message: string) => void;
}

/** The warning StepVideo.load gives when it loads the built-in test model. */
export const BUILTIN_MODEL_WARNING = 'no model folder given: using the built-in test model (tiny, random weights; its videos are noise)';

/** A LoRA adapter: its file ('FILE' or 'FILE:scale'), the file and a scale, or a loaded adapter (borrowed). */
export type LoraSpec = string | { file: string; scale?: number } | LoraAdapter;

export interface GenerateOptions extends JobRequest {
  /** This job's LoRA adapter (default: the one given to load, if any); null for none. */
  lora?: LoraSpec | null;
  /** Centre-crop landscape/portrait videos to 540×960/960×540 as the official writer does (default true). */
  crop?: boolean;
  /**
   * A small picture of the video taking shape (the middle latent frame through a linear latent-to-RGB
   * map fitted on this model's VAE: under 1 % of a step), every `previewEvery` steps and after the last.
   */
  onPreview?: (preview: PreviewEvent) => void | Promise<void>;
  /** Steps between previews (default: a tenth of the steps, at least 1). */
  previewEvery?: number;
  /** The previews' longer side in pixels, at most (default 256). */
  previewSize?: number;
  signal?: AbortSignal;
  onProgress?: (progress: PipelineProgress) => void;
  onWarning?: (message: string) => void;
}

/** Captions as the official caption server returns them (host tensors, ready for safetensors). */
export interface CaptionTensors {
  y: HostTensor;
  y_mask: HostTensor;
  clip_embedding: HostTensor;
}


/** A FIFO lock: one job stage on the device at a time; a waiter can give up through its signal. */
class DeviceLock {
  #tail: Promise<void> = Promise.resolve();

  async acquire(signal: AbortSignal | undefined): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const previous = this.#tail;
    this.#tail = previous.then(() => mine);
    if (signal === undefined) {
      await previous;
      return release;
    }
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        previous,
        new Promise<never>((_, reject) => {
          onAbort = () => reject(new StepVideoError('ERR_ABORTED', 'the job was aborted while waiting for the device', { cause: signal.reason }));
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } catch (error) {
      // Give the turn back once it comes, so the jobs queued behind this one are not blocked.
      void previous.then(release);
      throw error;
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
    return release;
  }
}

export class StepVideo implements Disposable, AsyncDisposable {
  readonly device: Device;
  readonly dtype: ComputeDType;
  /** The model folder (the built-in model's cache folder when `builtin`). */
  readonly modelDir: string;
  /** Whether this is the built-in test model. */
  readonly builtin: boolean;
  /** The size a job gets when it names none (released: 204×544×992; built-in: small). */
  readonly defaultSize: NormalizedVideoSize;
  readonly text: CaptionEncoder;
  readonly dit: StepVideoDiT;
  readonly vae: VideoVAE;
  /** How the DiT's work is split over ranks (StepVideoLoadOptions' sequenceParallel, cfgParallel). */
  readonly parallelism: Readonly<Required<DiTParallelism>>;
  /** Decoder replicas the VAE shares its chunks with (placement.vae's other devices). */
  readonly vaeHelpers: readonly VideoVAE[];
  /** The DiT of each rank, group-major (the first is `dit`; ranks on one device share one). */
  readonly rankModels: readonly StepVideoDiT[];
  readonly #checkMemory: boolean;
  readonly #denoisers = new Map<boolean, ParallelDiT>();
  #previewer: Promise<LatentPreviewer> | undefined;
  readonly #defaultLora: LoraSpec | undefined;
  /** Adapters loaded from files, by resolved path and scale; freed with the pipeline. */
  readonly #loras = new Map<string, Promise<LoraAdapter>>();
  readonly #lock = new DeviceLock();
  #disposed = false;

  private constructor(init: { device: Device; dtype: ComputeDType; modelDir: string; builtin: boolean; text: CaptionEncoder; dit: StepVideoDiT; vae: VideoVAE; vaeHelpers: VideoVAE[]; checkMemory: boolean; parallelism: Required<DiTParallelism>; rankModels: StepVideoDiT[]; lora?: LoraSpec }) {
    this.#defaultLora = init.lora;
    this.vaeHelpers = Object.freeze([...init.vaeHelpers]);
    this.parallelism = Object.freeze({ ...init.parallelism });
    this.rankModels = Object.freeze([...init.rankModels]);
    this.device = init.device;
    this.dtype = init.dtype;
    this.modelDir = init.modelDir;
    this.builtin = init.builtin;
    this.text = init.text;
    this.dit = init.dit;
    this.vae = init.vae;
    this.#checkMemory = init.checkMemory;
    this.defaultSize = { ...(init.builtin ? BUILTIN_DEFAULT_VIDEO : RELEASED_DEFAULT_VIDEO) };
  }

  static async load(options: StepVideoLoadOptions = {}): Promise<StepVideo> {
    const { signal, onProgress } = options;
    const device = getDevice(options.device ?? options.devices?.[0]);
    const dtype = resolveComputeDType(device, options.dtype, 'bf16', 'pipeline dtype');
    const weights = options.weights ?? 'model';
    if (weights !== 'model' && weights !== 'fp8') {
      throw new StepVideoError('ERR_ARGUMENT', 'weights must be a DiT weight format', { expected: "'model' (the compute dtype) or 'fp8'", got: weights });
    }
    const parallelism = resolveParallelism(options);
    const rankDevices = resolveRankDevices(options.devices, parallelism, device);
    const textDevice = getDevice(options.placement?.text ?? device);
    const vaeDevices = (Array.isArray(options.placement?.vae) ? options.placement.vae : [options.placement?.vae ?? device]).map((d) => getDevice(d));
    const vaeDevice = vaeDevices[0]!;
    const builtin = options.modelDir === undefined;
    if (builtin) options.onWarning?.(BUILTIN_MODEL_WARNING);
    let made: string | undefined;
    const given = builtin
      ? await ensureBuiltinModel({
          ...(options.cacheDir ? { cacheDir: options.cacheDir } : {}),
          ...(signal ? { signal } : {}),
          onCreate: (dir) => {
            made = dir;
            onProgress?.({ stage: 'prepare', dir, done: false, fraction: 0 });
          },
        })
      : path.resolve(options.modelDir!);
    if (made !== undefined) onProgress?.({ stage: 'prepare', dir: made, done: true, fraction: 1 });
    // The root, also when modelDir names one of its folders (transformer/, hunyuan_clip/, ...).
    const modelDir = resolveModelRoot(given);
    const dims = await readModelDims(modelDir);
    if (dims.dit.numAttentionHeads % parallelism.sequenceParallel !== 0) {
      throw new StepVideoError('ERR_ARGUMENT', `sequenceParallel must divide the DiT's ${dims.dit.numAttentionHeads} attention heads`, { got: parallelism.sequenceParallel });
    }
    const streaming = resolveStreaming(options.streaming, dims.dit, dtype, weights);
    if (streaming && !device.isCuda) options.onWarning?.('weight streaming on the CPU saves no memory (host and device memory are one there): it runs for testing only');
    const checkMemory = options.checkMemory ?? true;
    if (checkMemory) {
      await checkLoadMemory(dims, dtype, { weights, streaming }, { dit: device, text: textDevice, vae: vaeDevice });
      for (const other of new Set(rankDevices.filter((d) => d !== device))) await checkReplicaMemory(dims, dtype, { weights, streaming }, other, 'dit');
      for (const other of new Set(vaeDevices.slice(1).filter((d) => d !== vaeDevice))) await checkReplicaMemory(dims, dtype, { weights, streaming }, other, 'vae');
    }

    const loadProgress = (part: ModelPart) => (p: { loadedBytes: number; totalBytes: number }) =>
      onProgress?.({ stage: 'load', part, loadedBytes: p.loadedBytes, totalBytes: p.totalBytes, fraction: p.totalBytes > 0 ? p.loadedBytes / p.totalBytes : 1 });
    const common = { device, ...(signal ? { signal } : {}) };
    const loaded: Disposable[] = [];
    try {
      // The CPU computes in f32 only: a part placed there takes f32 whatever the pipeline's dtype.
      const dtypeOn = (d: Device): ComputeDType => (d.isCuda ? dtype : 'f32');
      const text = await CaptionEncoder.load(modelDir, { ...common, device: textDevice, llmDType: dtypeOn(textDevice), clipDType: 'f32', outputDType: dtypeOn(textDevice), onProgress: (p) => loadProgress(p.part)(p) });
      loaded.push(text);
      const ditOptions = { dtype, weights, streaming, ...(signal ? { signal } : {}), onProgress: loadProgress('dit') };
      const dit = await StepVideoDiT.load(path.join(modelDir, 'transformer'), { ...ditOptions, device });
      loaded.push(dit);
      // One replica per other device of the ranks, shared by the ranks there.
      const replicas = new Map<Device, StepVideoDiT>([[device, dit]]);
      for (const other of rankDevices) {
        if (replicas.has(other)) continue;
        const replica = await StepVideoDiT.load(path.join(modelDir, 'transformer'), { ...ditOptions, device: other });
        loaded.push(replica);
        replicas.set(other, replica);
      }
      const rankModels = rankDevices.map((d) => replicas.get(d)!);
      const vae = await VideoVAE.load(path.join(modelDir, 'vae'), { ...common, device: vaeDevice, dtype: dtypeOn(vaeDevice), parts: ['decoder'], onProgress: loadProgress('vae') });
      loaded.push(vae);
      const vaeHelpers: VideoVAE[] = [];
      for (const other of vaeDevices.slice(1)) {
        const helper = await VideoVAE.load(path.join(modelDir, 'vae'), { ...common, device: other, dtype: vae.dtype, parts: ['decoder'] });
        loaded.push(helper);
        vaeHelpers.push(helper);
      }
      return new StepVideo({ device, dtype, modelDir, builtin, text, dit, vae, vaeHelpers, checkMemory, parallelism, rankModels, ...(options.lora !== undefined ? { lora: options.lora } : {}) });
    } catch (error) {
      for (const part of loaded) part[Symbol.dispose]();
      throw error;
    }
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  /** The model dimensions the memory estimates are made from. */
  get dims(): ModelDims {
    return { dit: this.dit.config, vae: this.vae.config, llm: this.text.llm.config, clip: this.text.clip.config };
  }

  /** Estimated activation memory of a job of this size (the weights are already resident). */
  estimateMemory(request: VideoSizeRequest & { cfgScale?: number } = {}): MemoryEstimate & { devices: Record<string, number> } {
    const { size } = normalizeVideoSize(request, this.defaultSize);
    const estimate = estimateJobMemory(this.dims, { ...size, guidance: (request.cfgScale ?? 9) > 1 }, computeBytes(this.dtype), this.#queue, this.dit.execution);
    const devices = Object.fromEntries([...this.#stagesByDevice(estimate)].map(([device, { bytes }]) => [device.name, bytes]));
    return { ...estimate, devices };
  }

  /**
   * Encodes the prompt and samples the latents (progress per step, with ETA); the returned video
   * decodes as it is read or saved. Normalisations of the request are reported through onWarning.
   * Throws ERR_OOM / ERR_CUDA_OOM before any work when the job cannot fit, ERR_ABORTED when the
   * signal fires (everything freed).
   */
  async generate(options: GenerateOptions): Promise<GeneratedVideo> {
    this.#requireLive();
    const { signal, onProgress, onWarning } = options;
    const job = resolveJob(options, this.defaultSize);
    for (const warning of job.warnings) onWarning?.(warning);
    const { frames, height, width } = job.size;
    const guidance = job.settings.cfgScale > 1;
    const tokens = this.text.stepTokenizer.tokenize(job.captionRows[0]!).length;
    if (tokens > LLM_TOKENS - 2) onWarning?.(`the prompt (with the positive magic) is ${tokens} Step-LLM tokens long: only the first ${LLM_TOKENS - 2} are used`);

    const previewEvery = options.previewEvery ?? Math.max(1, Math.round(job.settings.steps / 10));
    if (options.onPreview !== undefined && (!Number.isSafeInteger(previewEvery) || previewEvery < 1)) throw new StepVideoError('ERR_ARGUMENT', 'previewEvery must be a positive integer', { got: previewEvery });
    const previewer = options.onPreview ? await this.previewer({ ...(signal ? { signal } : {}) }) : undefined;
    const lora = await this.#lora(options.lora === undefined ? this.#defaultLora : options.lora);

    const release = await this.#lock.acquire(signal);
    let latents: Tensor;
    let evaluations = 0;
    let maxEvaluations = 0;
    try {
      throwIfAborted(signal, 'generation');
      this.#requireLive();
      // Checked once the device is ours (the jobs before this one have freed their memory), before any work.
      if (this.#checkMemory) {
        const estimate = estimateJobMemory(this.dims, { ...job.size, guidance }, computeBytes(this.dtype), this.#queue, this.dit.execution);
        await this.#requireStageMemory(`a ${frames}-frame ${width}x${height} video`, estimate);
      }
      const textStarted = performance.now();
      onProgress?.({ stage: 'text', done: false, elapsedMs: 0, fraction: 0 });
      const captions = await this.text.encodePrompts(job.captionRows, signal ? { signal } : {});
      try {
        // The stages do not overlap on the queue: honest stage times, and memory as estimated.
        await this.text.device.synchronize();
        onProgress?.({ stage: 'text', done: true, elapsedMs: performance.now() - textStarted, fraction: 1 });
        const shape = latentShape({ frames, height, width, channels: this.vae.config.zChannels });
        const tracker = new EtaTracker(job.settings.steps);
        const cache = job.cache ? await this.#cacheOptions(job.cache, options.cacheCoefficients) : undefined;
        if (cache && this.parallelism.cfgParallel && guidance) {
          throw new StepVideoError('ERR_ARGUMENT', 'step caching with cfgParallel is not supported: a cached step may run one CFG branch alone, which the two-group layout cannot', { got: 'cache + cfgParallel' });
        }
        latents = await sample(this.#denoiser(job.settings.cfgScale > 1, onWarning), {
          noise: { seed: job.seed, shape },
          text: captions,
          ...job.settings,
          ...(cache ? { cache } : {}),
          ...(lora ? { lora } : {}),
          ...(signal ? { signal } : {}),
          onBlock: onProgress ? (p) => onProgress({ stage: 'denoise', step: p.step, total: p.total, block: p.block, blocks: p.blocks, ...tracker.at(p.step + p.block / p.blocks) }) : undefined,
          onProgress: async (p) => {
            evaluations = p.evaluations;
            maxEvaluations = p.maxEvaluations;
            if (previewer && (p.step % previewEvery === 0 || p.step === p.total)) {
              const image = await previewer.render(p.latents, { maxSide: options.previewSize ?? 256 });
              await options.onPreview!({ step: p.step, total: p.total, width: image.width, height: image.height, png: image.png });
            }
            onProgress?.({ stage: 'denoise', step: p.step, total: p.total, ...tracker.at(p.step), evaluated: p.evaluated, ...(p.estimates ? { estimates: p.estimates } : {}), evaluations: p.evaluations, maxEvaluations: p.maxEvaluations });
          },
        });
      } finally {
        captions.y.dispose();
        captions.clip.dispose();
      }
    } catch (error) {
      throw asAborted(error, signal, 'generation');
    } finally {
      release();
    }

    const crop = (options.crop ?? true) ? standard540pCrop(height, width) : undefined;
    return new GeneratedVideo(
      latents,
      {
        prompt: job.prompt,
        seed: job.seed,
        preset: job.preset,
        settings: job.settings,
        frames,
        width: crop?.width ?? width,
        height: crop?.height ?? height,
        decodedWidth: width,
        decodedHeight: height,
        fps: VIDEO_FPS,
        evaluations,
        maxEvaluations,
      },
      { decode: (z, s) => this.#decode(z, s), crop, signal, onProgress },
    );
  }

  /**
   * The latent-to-RGB map of live previews (lib/pipeline/preview.ts), fitted on this model's VAE the
   * first time it is asked for (seconds on a CPU, well under one on a GPU), then kept: in memory, and
   * in the model folder as stepvideo-preview.json where it is writable, tied to the VAE's files.
   */
  async previewer(options: { signal?: AbortSignal } = {}): Promise<LatentPreviewer> {
    this.#requireLive();
    this.#previewer ??= this.#loadOrFitPreviewer(options.signal);
    try {
      return await this.#previewer;
    } catch (error) {
      this.#previewer = undefined;
      throw error;
    }
  }

  async #loadOrFitPreviewer(signal: AbortSignal | undefined): Promise<LatentPreviewer> {
    const file = path.join(this.modelDir, PREVIEW_FILE);
    const source = await vaeFingerprint(path.join(this.modelDir, 'vae'));
    try {
      const saved = JSON.parse(await readFile(file, 'utf8')) as { source?: string; map?: unknown };
      if (saved.source === source) return LatentPreviewer.fromJSON(saved.map);
    } catch {
      // Missing, stale or unreadable: fitted again below.
    }
    const fitted = await LatentPreviewer.fit(this.vae, { ...(signal ? { signal } : {}) });
    await writeFileAtomic(file, `${JSON.stringify({ source, map: fitted.toJSON() })}\n`).catch(() => undefined);
    return fitted;
  }

  /**
   * Fits the 'teacache' step cache on this model (stepvideo calibrate-cache): each prompt sampled
   * without caching at the given settings, the probe's and the outputs' step-to-step changes
   * recorded, a polynomial fitted per CFG branch. Write the result with JSON.stringify to
   * `<model>/stepvideo-teacache.json` (TEACACHE_FILE), where jobs asking for 'teacache' find it.
   */
  async calibrateCache(options: Omit<JobRequest, 'prompt' | 'cache' | 'cacheCoefficients'> & { prompts: readonly string[]; signal?: AbortSignal; onRun?: (done: number, total: number) => void }): Promise<TeaCacheCalibration> {
    this.#requireLive();
    const { prompts, signal } = options;
    if (prompts.length === 0) throw new StepVideoError('ERR_ARGUMENT', 'calibrateCache needs at least one prompt');
    const pairs: number[][] = [];
    let last: ReturnType<typeof resolveJob> | undefined;
    for (const [i, prompt] of prompts.entries()) {
      const job = (last = resolveJob({ ...options, prompt, seed: options.seed ?? i }, this.defaultSize));
      const guidance = job.settings.cfgScale > 1;
      const release = await this.#lock.acquire(signal);
      try {
        const captions = await this.text.encodePrompts(job.captionRows, signal ? { signal } : {});
        using recorder = new CalibrationRecorder(this.#denoiser(guidance, undefined), guidance ? 2 : 1);
        try {
          const shape = latentShape({ ...job.size, channels: this.vae.config.zChannels });
          using latents = await sample(recorder, { noise: { seed: job.seed, shape }, text: captions, ...job.settings, ...(signal ? { signal } : {}) });
          pairs.push(...recorder.pairs);
        } finally {
          captions.y.dispose();
          captions.clip.dispose();
        }
      } catch (error) {
        throw asAborted(error, signal, 'cache calibration');
      } finally {
        release();
      }
      options.onRun?.(i + 1, prompts.length);
    }
    const { settings, size } = last!;
    return {
      method: 'teacache',
      version: 1,
      ...fitTeaCache(pairs),
      runs: { prompts: prompts.length, steps: settings.steps, timeShift: settings.timeShift, cfgScale: settings.cfgScale, ...size },
      model: this.builtin ? 'built-in test model' : this.modelDir,
      fittedAt: new Date().toISOString(),
    };
  }

  /** The adapter a job names, loaded once per file and scale (on the DiT's device; not with DiT ranks on other devices). */
  async #lora(spec: LoraSpec | null | undefined): Promise<LoraAdapter | undefined> {
    if (spec === undefined || spec === null) return undefined;
    if (this.rankModels.some((model) => model.device !== this.dit.device)) {
      throw new StepVideoError('ERR_ARGUMENT', 'a LoRA adapter with DiT ranks on several devices is not supported yet', { got: this.rankModels.map((m) => m.device.name).join(', ') });
    }
    if (spec instanceof LoraAdapter) return spec;
    const { file, scale } = typeof spec === 'string' ? parseLoraSpec(spec) : { file: spec.file, scale: spec.scale ?? 1 };
    const key = `${path.resolve(file)}:${scale}`;
    let adapter = this.#loras.get(key);
    if (adapter === undefined) {
      adapter = LoraAdapter.load(file, { config: this.dit.config, device: this.dit.device, dtype: this.dit.dtype, scale });
      this.#loras.set(key, adapter);
      adapter.catch(() => this.#loras.delete(key));
    }
    return adapter;
  }

  /** A job's step cache, with the 'teacache' coefficients from the job, a calibration file, or the model folder's. */
  async #cacheOptions(cache: StepCacheOptions, given: TeaCacheCoefficients | string | undefined): Promise<StepCacheOptions> {
    if (cache.method !== 'teacache' || cache.coefficients !== undefined) return cache;
    if (typeof given === 'object') return { ...cache, coefficients: given };
    return { ...cache, coefficients: await readTeaCacheCoefficients(given ?? path.join(this.modelDir, TEACACHE_FILE)) };
  }

  /**
   * The official caption server's work (/caption-api): prompts encoded as given (no magic added),
   * returned as host tensors: y [N, 320, hidden], y_mask [N, 397] (int64), clip_embedding [N, 77, clip hidden].
   */
  async encodeCaptions(prompts: readonly string[], options: { signal?: AbortSignal } = {}): Promise<CaptionTensors> {
    this.#requireLive();
    const release = await this.#lock.acquire(options.signal);
    try {
      const encoded = await this.text.encodePrompts(prompts, options);
      using y = encoded.y;
      using clip = encoded.clip;
      const n = prompts.length;
      return {
        y: { dtype: y.dtype, shape: [...y.shape], data: await y.toArray() },
        y_mask: { dtype: 'i64', shape: [n, CLIP_TOKENS + LLM_TOKENS], data: BigInt64Array.from(encoded.yMask, (v) => BigInt(v)) },
        clip_embedding: { dtype: clip.dtype, shape: [...clip.shape], data: await clip.toArray() },
      };
    } catch (error) {
      throw asAborted(error, options.signal, 'caption encoding');
    } finally {
      release();
    }
  }

  /**
   * The official VAE server's work (/vae-api): latents [B, 3k, z, h, w] (host, f32) to frames
   * [B, 17k, 3, 16h, 16w] (f32, not clamped), chunk by chunk.
   */
  async decodeLatents(latents: Float32Array, shape: readonly number[], options: { signal?: AbortSignal } = {}): Promise<HostTensor> {
    this.#requireLive();
    if (shape.length !== 5 || shape[2] !== this.vae.config.zChannels) {
      throw new StepVideoError('ERR_SHAPE', 'latents must be [B, F, z, h, w]', { tensor: 'samples', expected: `[B, 3k, ${this.vae.config.zChannels}, h, w]`, got: `[${shape.join(', ')}]` });
    }
    const [B, F, , h, w] = shape as [number, number, number, number, number];
    if (F % LATENTS_PER_CHUNK !== 0) throw new StepVideoError('ERR_SHAPE', `the latent frame count must be a multiple of ${LATENTS_PER_CHUNK}`, { tensor: 'samples', got: F });
    const frames = (F / LATENTS_PER_CHUNK) * FRAMES_PER_CHUNK;
    const H = h * SPATIAL_FACTOR;
    const W = w * SPATIAL_FACTOR;
    if (this.#checkMemory) {
      const estimate = estimateJobMemory(this.dims, { frames, height: H, width: W, guidance: false }, computeBytes(this.dtype), this.#queue, this.dit.execution);
      requireMemory(`decoding ${frames} frames of ${W}x${H}`, B * estimate.stages.decode, { decode: B * estimate.stages.decode }, this.vae.device, await freeBytes(this.vae.device));
    }
    const out = new Float32Array(B * frames * 3 * H * W);
    using input = Tensor.from(latents, [...shape], { dtype: 'f32', device: this.vae.device });
    const frameValues = 3 * H * W;
    for await (const chunk of this.#decode(input, options.signal)) {
      const values = await chunk.frames.toFloat32();
      for (let b = 0; b < B; b++) {
        const from = b * FRAMES_PER_CHUNK * frameValues;
        out.set(values.subarray(from, from + FRAMES_PER_CHUNK * frameValues), (b * frames + chunk.index * FRAMES_PER_CHUNK) * frameValues);
      }
    }
    return { dtype: 'f32', shape: [B, frames, 3, H, W], data: out };
  }

  /** Frees every model. A job still running fails with ERR_DISPOSED; prefer `await using` / asyncDispose. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.text.dispose();
    for (const model of new Set([this.dit, ...this.rankModels])) model.dispose();
    this.vae.dispose();
    for (const helper of this.vaeHelpers) helper.dispose();
    for (const adapter of this.#loras.values()) void adapter.then((a) => a.dispose(), () => undefined);
    this.#loras.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Waits for the running job stage, then frees every model. */
  async [Symbol.asyncDispose](): Promise<void> {
    const release = await this.#lock.acquire(undefined);
    try {
      this.dispose();
    } finally {
      release();
    }
  }

  /** The VAE's chunks, each decode step under the device lock (other jobs may run between chunks). */
  async *#decode(latents: Tensor, signal: AbortSignal | undefined): AsyncGenerator<DecodedChunk, void, undefined> {
    this.#requireLive();
    // With the VAE on a device of its own the latents go there first (a small copy: 1/256 of the video).
    using onVae = latents.device === this.vae.device ? latents.narrow(0, latents.size(0)) : await latents.to(this.vae.device);
    const chunks = this.vae.decodeChunks(onVae, { ...(signal ? { signal } : {}), helpers: this.vaeHelpers });
    try {
      for (;;) {
        const release = await this.#lock.acquire(signal);
        let next: IteratorResult<DecodedChunk, void>;
        try {
          this.#requireLive();
          next = await chunks.next();
        } finally {
          release();
        }
        if (next.done) return;
        yield next.value;
      }
    } catch (error) {
      throw asAborted(error, signal, 'video decoding');
    } finally {
      await chunks.return(undefined);
    }
  }

  /** A job's stages on their devices: each device must hold the largest stage it runs. */
  async #requireStageMemory(what: string, estimate: MemoryEstimate): Promise<void> {
    for (const [device, { bytes, stages }] of this.#stagesByDevice(estimate)) requireMemory(what, bytes, stages, device, await freeBytes(device));
  }

  /**
   * Per device, the stages it runs and the bytes it needs: the largest of them with the estimate's
   * margin. The text stage runs on the caption encoders' device, decoding on the VAE's (and its
   * helpers'), denoising on the DiT's; a DiT rank on another device holds a 1/sequenceParallel share
   * of the denoising activations there (a model: each rank's tokens, or heads around attention, are
   * that share; not yet measured on several GPUs).
   */
  #stagesByDevice(estimate: MemoryEstimate): Map<Device, { bytes: number; stages: Record<string, number> }> {
    const margin = estimate.peakBytes / Math.max(1, ...Object.values(estimate.stages));
    const placed: Array<[string, number, Device]> = [
      ['text', estimate.stages.text, this.text.device],
      ['denoise', estimate.stages.denoise, this.device],
      ['decode', estimate.stages.decode, this.vae.device],
      ...this.vaeHelpers.map((h): [string, number, Device] => ['decode', estimate.stages.decode, h.device]),
    ];
    const ranksOn = new Map<Device, number>();
    for (const model of this.rankModels) if (model.device !== this.device) ranksOn.set(model.device, (ranksOn.get(model.device) ?? 0) + 1);
    for (const [device, ranks] of ranksOn) placed.push(['denoise (rank share)', (ranks * estimate.stages.denoise) / this.parallelism.sequenceParallel, device]);
    const out = new Map<Device, { bytes: number; stages: Record<string, number> }>();
    for (const [stage, bytes, device] of placed) {
      const entry = out.get(device) ?? { bytes: 0, stages: {} };
      entry.stages[stage] = Math.max(entry.stages[stage] ?? 0, bytes);
      entry.bytes = Math.ceil(margin * Math.max(...Object.values(entry.stages)));
      out.set(device, entry);
    }
    return out;
  }

  /** What the sampler runs: the DiT itself, or behind its parallel layout (CFG parallelism only where the job has guidance). */
  #denoiser(guidance: boolean, onWarning: ((message: string) => void) | undefined): VelocityModel<Disposable> {
    const { sequenceParallel, cfgParallel } = this.parallelism;
    if (cfgParallel && !guidance) onWarning?.('cfgParallel: this job has no classifier-free guidance (cfg scale <= 1), so there is no unconditional branch to run beside it');
    const split = cfgParallel && guidance;
    if (sequenceParallel === 1 && !split) return this.dit;
    // Made once per layout (an NCCL group is costly to set up). Without guidance the unconditional
    // group's ranks stay idle: the conditional group's models only.
    let denoiser = this.#denoisers.get(split);
    if (denoiser === undefined) {
      const ranks = split ? this.rankModels : this.rankModels.slice(0, sequenceParallel);
      denoiser = new ParallelDiT(this.dit, { sequenceParallel, cfgParallel: split }, ranks, onWarning);
      this.#denoisers.set(split, denoiser);
    }
    return denoiser;
  }

  get #queue(): QueueModel {
    return this.device.isCuda ? 'cuda' : 'cpu';
  }

  #requireLive(): void {
    if (this.#disposed) throw new StepVideoError('ERR_DISPOSED', 'the StepVideo pipeline was used after dispose()');
  }
}

/**
 * Memory a new allocation can use: the host's available memory, or on a GPU the driver's free
 * memory once the allocator's pool has returned its unused blocks (waits for the device). Pooled
 * free memory is not counted as such: it may be in pieces too small for the request.
 */
async function freeBytes(device: Device): Promise<number> {
  if (!device.isCuda) return os.freemem();
  await trimCudaPool(device);
  return device.info().freeBytes;
}

/**
 * Fails (ERR_CUDA_OOM / ERR_OOM) when the weights cannot be loaded: the device part against the
 * device's free memory, and streamed DiT blocks against the host's (on the CPU, both together).
 */
async function checkLoadMemory(dims: ModelDims, dtype: ComputeDType, dit: { weights: DiTWeightFormat; streaming: boolean }, placed: { dit: Device; text: Device; vae: Device }): Promise<void> {
  const load = estimateLoadMemory(dims, dtype, dit);
  const hostBytes = Math.ceil(load.hostBytes * LOAD_MARGIN);
  // requireMemory leaves the parts of 0 bytes out of its message.
  const hostPart = { 'dit (streamed, host)': load.hostBytes };
  const deviceOf: Record<keyof typeof load.parts, Device> = { dit: placed.dit, 'step-llm': placed.text, clip: placed.text, vae: placed.vae };
  for (const device of new Set(Object.values(deviceOf))) {
    const parts = Object.fromEntries(Object.entries(load.parts).filter(([part]) => deviceOf[part as keyof typeof load.parts] === device));
    const bytes = Math.ceil(Object.values(parts).reduce((a, b) => a + b, 0) * LOAD_MARGIN);
    // On the CPU host and device memory are one: the streamed DiT's pinned blocks count there too.
    const withHost = !device.isCuda && device === placed.dit;
    requireMemory('the model weights', bytes + (withHost ? hostBytes : 0), withHost ? { ...parts, ...hostPart } : parts, device, await freeBytes(device));
  }
  if (placed.dit.isCuda && hostBytes > 0) requireMemory("the DiT's streamed weights (pinned)", hostBytes, hostPart, Device.cpu, await freeBytes(Device.cpu));
}

/** An error after the signal fired is reported as the abort it is (keeping the original as cause). */
function asAborted(error: unknown, signal: AbortSignal | undefined, what: string): unknown {
  if (signal?.aborted && !isStepVideoError(error, 'ERR_ABORTED')) return new StepVideoError('ERR_ABORTED', `${what} aborted`, { cause: error });
  return error;
}

/** Configs of the four parts, read before any weight, and checked against each other. */
async function readModelDims(modelDir: string): Promise<ModelDims> {
  const dit = await readDiTConfig(path.join(modelDir, 'transformer'));
  const vae = await readVaeConfig(path.join(modelDir, 'vae'));
  const llmJson = await ConfigJson.read(path.join(modelDir, 'step_llm', 'config.json'));
  const llm = parseStepLlmConfig(llmJson);
  const clipJson = await ConfigJson.read(path.join(modelDir, 'hunyuan_clip', 'clip_text_encoder', 'config.json'));
  const clip = parseClipConfig(clipJson);
  const ditFile = path.join(modelDir, 'transformer', 'config.json');
  if (dit.inChannels !== vae.zChannels || dit.outChannels !== vae.zChannels) {
    throw new StepVideoError('ERR_CONFIG', "the DiT's latent channels differ from the VAE's", { file: ditFile, expected: `in_channels = out_channels = ${vae.zChannels} (the VAE's z_channels)`, got: `${dit.inChannels} / ${dit.outChannels}` });
  }
  if (dit.captionChannels[0] !== llm.hiddenSize || dit.captionChannels[1] !== clip.hiddenSize) {
    throw new StepVideoError('ERR_CONFIG', "the DiT's caption_channels differ from the text encoders' widths", {
      file: ditFile,
      expected: `[${llm.hiddenSize}, ${clip.hiddenSize}] (Step-LLM hidden_size, CLIP hidden_size)`,
      got: `[${dit.captionChannels.join(', ')}]`,
    });
  }
  return { dit, vae, llm, clip };
}

/** sequenceParallel and cfgParallel, checked (the heads are checked once the config is read). */
function resolveParallelism(options: StepVideoLoadOptions): Required<DiTParallelism> {
  const sequenceParallel = options.sequenceParallel ?? 1;
  if (!Number.isInteger(sequenceParallel) || sequenceParallel < 1) {
    throw new StepVideoError('ERR_ARGUMENT', 'sequenceParallel must be a positive integer', { got: sequenceParallel });
  }
  return { sequenceParallel, cfgParallel: options.cfgParallel ?? false };
}

/** The device of every DiT rank: `devices` checked against the layout, or the pipeline's device for each. */
function resolveRankDevices(devices: DeviceSpec[] | undefined, parallelism: Required<DiTParallelism>, device: Device): Device[] {
  const ranks = parallelism.sequenceParallel * (parallelism.cfgParallel ? 2 : 1);
  if (devices === undefined) return Array.from({ length: ranks }, () => device);
  if (!Array.isArray(devices) || devices.length !== ranks) {
    throw new StepVideoError('ERR_ARGUMENT', `devices names one device per DiT rank: ${ranks} here (sequenceParallel ${parallelism.sequenceParallel}${parallelism.cfgParallel ? ' x 2 CFG groups' : ''})`, { got: Array.isArray(devices) ? devices.length : String(devices) });
  }
  const resolved = devices.map((spec) => getDevice(spec));
  if (resolved[0] !== device) {
    throw new StepVideoError('ERR_ARGUMENT', "the first rank's device is the pipeline's device (the text encoders and the VAE run there)", { expected: device.name, got: resolved[0]!.name });
  }
  return resolved;
}

/** A replica's weights (the DiT's, or the VAE decoder's) on another device. */
async function checkReplicaMemory(dims: ModelDims, dtype: ComputeDType, dit: { weights: DiTWeightFormat; streaming: boolean }, device: Device, part: 'dit' | 'vae'): Promise<void> {
  const load = estimateLoadMemory(dims, dtype, dit);
  const bytes = Math.ceil(load.parts[part] * LOAD_MARGIN);
  requireMemory(`a ${part === 'dit' ? 'DiT' : 'VAE decoder'} replica's weights`, bytes, { [part]: load.parts[part] }, device, await freeBytes(device));
}

/** The saved preview map's name in a model folder. */
export const PREVIEW_FILE = 'stepvideo-preview.json';

/** Names, sizes and times of the VAE's files: a saved preview map holds only for the VAE it was fitted on. */
async function vaeFingerprint(dir: string): Promise<string> {
  try {
    const names = (await readdir(dir)).sort();
    const parts = await Promise.all(names.map(async (name) => {
      const info = await stat(path.join(dir, name));
      return `${name}:${info.size}:${Math.round(info.mtimeMs)}`;
    }));
    return parts.join('|');
  } catch {
    return 'unknown';
  }
}

