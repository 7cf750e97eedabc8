// Memory estimates made before any work starts, so that a model that cannot be loaded or a job
// that cannot fit fails at once with a message naming the estimate and what is free (ERR_CUDA_OOM
// on a GPU, ERR_OOM on the host), instead of failing minutes later in the middle of the VAE.
//
// The DiT's share comes from its exact memory model (lib/models/dit/memory-model.ts: the weights as
// loaded, FP8 or streamed, and the forward's allocations replayed; its tests hold it to measured
// peaks). The caption encoders and the VAE are counted from the tensors their code keeps alive at
// its worst moment (see the comments per stage). The job estimates are multiplied by a safety
// margin and are upper bounds, checked against measured peaks in the tests
// (test/cpu/pipeline.test.ts, test/gpu/pipeline.test.ts).
import type { Device } from '../device.js';
import { DTYPE_SIZE } from '../dtype.js';
import { StepVideoError } from '../errors.js';
import type { WeightSpec } from '../io/load.js';
import { type ClipConfig, clipWeightSpec } from '../models/clip/config.js';
import type { ComputeDType } from '../models/compute-dtype.js';
import type { DiTConfig } from '../models/dit/config.js';
import { ditWeightBytes, estimateDiTMemory } from '../models/dit/memory-model.js';
import type { DiTExecution, DiTWeightFormat } from '../models/dit/model.js';
import { type StepLlmConfig, stepLlmWeightSpec } from '../models/step-llm/config.js';
import { FRAMES_PER_CHUNK, type VaeConfig } from '../models/vae/config.js';
import { decoderWeightSpec } from '../models/vae/weights.js';
import { latentShape } from '../sampler/noise.js';
import { numel } from '../shape.js';
import { CLIP_TOKENS, LLM_TOKENS } from '../tokenizers/caption-lengths.js';

/** Frames a decoder chunk holds at full resolution before it drops 3 (spec §3.4: 3 → 5 → 10 → 20). */
const DECODER_FULL_FRAMES = 20;
/** Multiplied onto every job count: allocator rounding, small temporaries, what the count leaves out. */
export const SAFETY_MARGIN = 1.25;
/** Multiplied onto the weights at load: the transient copies of a batch being read and converted. */
export const LOAD_MARGIN = 1.1;

export interface ModelDims {
  dit: DiTConfig;
  vae: VaeConfig;
  llm: StepLlmConfig;
  clip: ClipConfig;
}

export interface ComputeBytes {
  /** Bytes per element of the DiT, the VAE and Step-LLM (2 for bf16, 4 for f32). */
  model: number;
  /** Bytes per element of Hunyuan-CLIP (official: f32 everywhere). */
  clip: number;
}

/** The element sizes of a pipeline computing in `dtype` (Hunyuan-CLIP always in f32). */
export function computeBytes(dtype: ComputeDType): ComputeBytes {
  return { model: DTYPE_SIZE[dtype], clip: DTYPE_SIZE.f32 };
}

export interface JobSize {
  frames: number;
  height: number;
  width: number;
  /** Classifier-free guidance doubles the DiT's rows. */
  guidance: boolean;
}

export interface MemoryEstimate {
  /** Bytes per stage; the stages run one after another, so the job needs the largest. */
  stages: { text: number; denoise: number; decode: number };
  /** max(stages) · SAFETY_MARGIN. */
  peakBytes: number;
}

export function specBytes(spec: WeightSpec, bytesPerElement: number): number {
  let total = 0;
  for (const shape of spec.values()) total += numel(shape) * bytesPerElement;
  return total;
}

/**
 * How a device's queue holds memory. 'cpu': every op's output is allocated when the op is enqueued
 * and freed when the last reader has run, so all temporaries of the work in flight exist at once
 * (the DiT keeps two blocks in flight; Step-LLM and CLIP enqueue every layer). 'cuda': freed blocks
 * are reused in stream order, so only what the program still holds (the live set) counts.
 */
export type QueueModel = 'cpu' | 'cuda';

/** The DiT dtype of a pipeline's element sizes. */
function ditDType(bytes: ComputeBytes): ComputeDType {
  return bytes.model === DTYPE_SIZE.bf16 ? 'bf16' : 'f32';
}

/**
 * Activation memory of one job (the weights are counted apart, once, at load). `dit` says how the
 * DiT holds its weights (FP8 changes what its Linears allocate; default: the model dtype).
 */
export function estimateJobMemory(dims: ModelDims, size: JobSize, bytes: ComputeBytes, queue: QueueModel, dit: Partial<DiTExecution> = {}): MemoryEstimate {
  const rows = size.guidance ? 2 : 1;
  const cpu = queue === 'cpu';

  // Caption encoders. Per layer and token: the norm, the fused projection, q/k/v, the attention
  // output and its projection, the residual (≈ 8·D), and the FFN's fused input, its halves'
  // product and output (≈ 5·F′; CLIP 3·I). The outputs y and clip stay until sampling ends.
  const { llm, clip } = dims;
  const llmLayer = rows * LLM_TOKENS * (8 * llm.hiddenSize + 5 * llm.ffnDim) * bytes.model;
  const clipLayer = rows * CLIP_TOKENS * (8 * clip.hiddenSize + 3 * clip.intermediateSize) * bytes.clip;
  const textOutputs = rows * (LLM_TOKENS * llm.hiddenSize + CLIP_TOKENS * clip.hiddenSize) * DTYPE_SIZE.f32;
  const text = (cpu ? llm.numLayers : 2) * llmLayer + (cpu ? clip.numLayers : 2) * clipLayer + 2 * textOutputs;

  // Denoising: the DiT's memory model (the context prepareContext keeps, the model input and the
  // forward's peak, its output included; on a CPU queue with the temporaries of the work in
  // flight), beside the sampler's f32 latents and the captions.
  const [, latentFrames, channels, latentHeight, latentWidth] = latentShape({ ...size, channels: dims.dit.inChannels });
  const ditMemory = estimateDiTMemory({
    config: dims.dit,
    batch: rows,
    latent: [latentFrames, latentHeight, latentWidth],
    text: { llm: LLM_TOKENS, clip: CLIP_TOKENS },
    dtype: ditDType(bytes),
    backend: queue,
    execution: dit,
  });
  const forward = cpu ? ditMemory.queuedPeakBytes : ditMemory.forwardPeakBytes;
  const latentBytes = latentFrames * channels * latentHeight * latentWidth * DTYPE_SIZE.f32;
  const denoise = ditMemory.contextBytes + ditMemory.inputBytes + forward + latentBytes + textOutputs;

  // VAE chunk: the worst moment is the first full-resolution res block, whose input has level 1's
  // width (c1) and output level 0's (c0): the input, its normed copy, the shortcut, conv1's output
  // and its normed copy, for 20 frames. Two decoded chunks [17, 3, H, W] (the boundary mix) and
  // the f32 copy read back for the frames stay beside it, and the latents.
  const { ch, chMult } = dims.vae.decoder;
  const c0 = ch * chMult[0]!;
  const c1 = ch * (chMult[1] ?? chMult[0]!);
  const pixels = size.height * size.width;
  const fullResolution = DECODER_FULL_FRAMES * pixels * (2 * c1 + 3 * c0) * bytes.model;
  const chunks = 3 * FRAMES_PER_CHUNK * 3 * pixels * Math.max(bytes.model, DTYPE_SIZE.f32);
  const decode = fullResolution + chunks + latentBytes;

  const stages = { text, denoise, decode };
  return { stages, peakBytes: Math.ceil(Math.max(text, denoise, decode) * SAFETY_MARGIN) };
}

export interface LoadMemoryEstimate {
  /**
   * Device bytes per part at the load's peak: the DiT as its memory model counts it (FP8 weights,
   * or with streaming its global tensors and two block slots), the VAE decoder twice (its
   * convolutions are repacked at load: briefly two copies).
   */
  parts: { dit: number; 'step-llm': number; clip: number; vae: number };
  /** The DiT's streamed block weights, in pinned host memory (0 without streaming). */
  hostBytes: number;
  /** sum(parts) · LOAD_MARGIN. */
  deviceBytes: number;
}

/** Memory the weights of a pipeline computing in `dtype` need while they load, the DiT held as `dit` says. */
export function estimateLoadMemory(dims: ModelDims, dtype: ComputeDType, dit: Partial<DiTExecution> = {}): LoadMemoryEstimate {
  const bytes = computeBytes(dtype);
  const ditBytes = ditWeightBytes(dims.dit, dtype, dit);
  const parts = {
    dit: ditBytes.device,
    'step-llm': specBytes(stepLlmWeightSpec(dims.llm), bytes.model),
    clip: specBytes(clipWeightSpec(dims.clip), bytes.clip),
    vae: 2 * specBytes(decoderWeightSpec(dims.vae), bytes.model),
  };
  const total = Object.values(parts).reduce((a, b) => a + b, 0);
  return { parts, hostBytes: ditBytes.host, deviceBytes: Math.ceil(total * LOAD_MARGIN) };
}

/** What a pipeline asks of weight streaming: always, never, or when the DiT exceeds a device budget. */
export type StreamingRequest = boolean | { deviceBudgetBytes: number };

/** How the ERR_ARGUMENT for a device budget below the streamed DiT's weights begins. */
export const STREAMING_BUDGET_TOO_SMALL = 'streaming.deviceBudgetBytes is too small';

/**
 * Whether the DiT streams its block weights. With a budget: only when its resident weights (in the
 * format `weights`) would take more device memory than the budget; ERR_ARGUMENT when even the
 * streamed weights (global tensors and two block slots) do not fit in it.
 */
export function resolveStreaming(request: StreamingRequest | undefined, config: DiTConfig, dtype: ComputeDType, weights: DiTWeightFormat): boolean {
  if (request === undefined || typeof request === 'boolean') return request ?? false;
  const budget = typeof request === 'object' && request !== null ? request.deviceBudgetBytes : undefined;
  if (typeof budget !== 'number' || !Number.isFinite(budget) || budget <= 0) {
    throw new StepVideoError('ERR_ARGUMENT', 'streaming must be true, false or { deviceBudgetBytes } with a positive number of bytes', {
      expected: 'streaming: boolean | { deviceBudgetBytes: number > 0 }',
      got: budget === undefined ? request : `deviceBudgetBytes ${String(budget)}`,
    });
  }
  if (ditWeightBytes(config, dtype, { weights }).device <= budget) return false;
  const streamed = ditWeightBytes(config, dtype, { weights, streaming: true }).device;
  if (streamed > budget) {
    throw new StepVideoError('ERR_ARGUMENT', `${STREAMING_BUDGET_TOO_SMALL}: even streamed, the DiT's ${weights === 'fp8' ? 'FP8 ' : ''}weights take ${formatBytes(streamed)} of device memory`, {
      expected: `at least ${streamed} bytes`,
      got: budget,
    });
  }
  return true;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/**
 * Throws ERR_CUDA_OOM (GPU) or ERR_OOM (host) when `needed` bytes exceed `available`, naming the
 * estimate, its parts and the free memory.
 */
export function requireMemory(what: string, needed: number, parts: Record<string, number>, device: Pick<Device, 'isCuda' | 'name'>, available: number): void {
  if (needed <= available) return;
  const breakdown = Object.entries(parts)
    .filter(([, value]) => value > 0)
    .map(([name, value]) => `${name} ${formatBytes(value)}`)
    .join(', ');
  const where = device.isCuda ? `GPU memory on ${device.name}` : 'host memory';
  throw new StepVideoError(device.isCuda ? 'ERR_CUDA_OOM' : 'ERR_OOM', `not enough ${where} for ${what}: it needs about ${formatBytes(needed)} (${breakdown}), ${formatBytes(available)} is free`);
}
