// Memory estimates made before any work starts, so that a job which cannot fit fails at once with
// a message naming the estimate and what is free (ERR_CUDA_OOM on a GPU, ERR_OOM on the host),
// instead of failing minutes later in the middle of the VAE.
//
// The estimates count the tensors the model code keeps alive at its worst moment (see the comments
// per stage), times a safety margin; they are upper bounds, checked against measured peaks in the
// tests (test/cpu/pipeline.test.ts, test/gpu/pipeline.test.ts).
import type { Device } from '../device.js';
import { StepVideoError } from '../errors.js';
import type { WeightSpec } from '../io/load.js';
import type { ClipConfig } from '../models/clip/config.js';
import type { DiTConfig } from '../models/dit/config.js';
import type { StepLlmConfig } from '../models/step-llm/config.js';
import type { VaeConfig } from '../models/vae/config.js';
import { FRAMES_PER_CHUNK, LATENTS_PER_CHUNK, SPATIAL_FACTOR } from '../models/vae/config.js';

/** Token lengths of the caption encoders (official max_length). */
const LLM_TOKENS = 320;
const CLIP_TOKENS = 77;
/** Frames a decoder chunk holds at full resolution before it drops 3 (spec §3.4: 3 → 5 → 10 → 20). */
const DECODER_FULL_FRAMES = 20;
/** Multiplied onto every count: allocator rounding, small temporaries, what the count leaves out. */
export const SAFETY_MARGIN = 1.25;

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
  for (const shape of spec.values()) total += shape.reduce((a, b) => a * b, 1) * bytesPerElement;
  return total;
}

/**
 * How a device's queue holds memory. 'cpu': every op's output is allocated when the op is enqueued
 * and freed when the last reader has run, so all temporaries of the work in flight exist at once
 * (the DiT keeps two blocks in flight; Step-LLM and CLIP enqueue every layer). 'cuda': freed blocks
 * are reused in stream order, so only what the program still holds (the live set) counts.
 */
export type QueueModel = 'cpu' | 'cuda';

/** Activation memory of one job (the weights are counted apart, once, at load). */
export function estimateJobMemory(dims: ModelDims, size: JobSize, bytes: ComputeBytes, queue: QueueModel): MemoryEstimate {
  const rows = size.guidance ? 2 : 1;
  const cpu = queue === 'cpu';

  // Caption encoders. Per layer and token: the norm, the fused projection, q/k/v, the attention
  // output and its projection, the residual (≈ 8·D), and the FFN's fused input, its halves'
  // product and output (≈ 5·F′; CLIP 3·I). The outputs y and clip stay until sampling ends.
  const { llm, clip } = dims;
  const llmLayer = rows * LLM_TOKENS * (8 * llm.hiddenSize + 5 * llm.ffnDim) * bytes.model;
  const clipLayer = rows * CLIP_TOKENS * (8 * clip.hiddenSize + 3 * clip.intermediateSize) * bytes.clip;
  const textOutputs = rows * (LLM_TOKENS * llm.hiddenSize + CLIP_TOKENS * clip.hiddenSize) * 4;
  const text = (cpu ? llm.numLayers : 2) * llmLayer + (cpu ? clip.numLayers : 2) * clipLayer + 2 * textOutputs;

  // DiT step over N = latent frames × h × w tokens per row. Live inside a block: at most x, the
  // fused qkv and q, k, v (7·D), or x, the FFN input, its hidden layer and output (3·D + F);
  // counted as 4·D + F per token. Every temporary of a block (19·D + F) on the CPU, for the two
  // blocks in flight. Plus every block's cross-attention keys and values, the RoPE tables, the f32
  // latents with the model input and velocity, and the captions.
  const { dit, vae } = dims;
  const latentFrames = (size.frames / FRAMES_PER_CHUNK) * LATENTS_PER_CHUNK;
  const tokens = latentFrames * (size.height / SPATIAL_FACTOR) * (size.width / SPATIAL_FACTOR);
  const D = dit.innerDim;
  const perToken = cpu ? 2 * (19 * D + dit.ffnDim) : 4 * D + dit.ffnDim;
  const block = rows * tokens * perToken * bytes.model;
  const rope = tokens * dit.attentionHeadDim * 2 * 4;
  const context = dit.numLayers * rows * (CLIP_TOKENS + LLM_TOKENS) * D * 2 * bytes.model;
  const latents = tokens * dit.inChannels * (4 + 2 * rows * bytes.model);
  const denoise = block + rope + context + latents + textOutputs;

  // VAE chunk: the worst moment is the first full-resolution res block, whose input has level 1's
  // width (c1) and output level 0's (c0): the input, its normed copy, the shortcut, conv1's output
  // and its normed copy, for 20 frames. Two decoded chunks [17, 3, H, W] (the boundary mix) and
  // the f32 copy read back for the frames stay beside it, and the latents.
  const { ch, chMult } = vae.decoder;
  const c0 = ch * chMult[0]!;
  const c1 = ch * (chMult[1] ?? chMult[0]!);
  const pixels = size.height * size.width;
  const fullResolution = DECODER_FULL_FRAMES * pixels * (2 * c1 + 3 * c0) * bytes.model;
  const chunks = 3 * FRAMES_PER_CHUNK * 3 * pixels * Math.max(bytes.model, 4);
  const decode = fullResolution + chunks + tokens * dit.inChannels * 4;

  const stages = { text, denoise, decode };
  return { stages, peakBytes: Math.ceil(Math.max(text, denoise, decode) * SAFETY_MARGIN) };
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
