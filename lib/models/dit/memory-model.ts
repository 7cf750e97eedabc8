// The DiT's device memory at any size, derived from the code: the weights as they are loaded, the
// text context prepareContext keeps, and the forward's transient peak, replayed allocation by
// allocation in the order model.ts makes and frees its tensors (and, on CUDA, the temporaries the
// FP8 and fused-residual ops make inside). The counts are exact: the tests hold them to
// device.memory() measured around a real forward at the golden size, so a change to the forward
// that moves the peak shows up here too. Not counted (it is not in device.memory() either): the
// cuBLASLt workspace (32 MiB per device) and the allocator's rounding and fragmentation.
//
// The forward peak is the live set: what CUDA's stream-ordered allocator holds, and the CPU backend
// when its queue is drained after every op. A CPU queue that runs behind holds the temporaries of
// the work in flight as well: an op's output is allocated when the op is enqueued and freed once
// the last op reading it has run, so queuedPeakBytes replays the same allocations with every freed
// tensor kept until the forward next waits for the device (after each block, for the one before).
import { DTYPE_SIZE } from '../../dtype.js';
import { numel } from '../../shape.js';
import { FP8_BLOCK_LINEARS } from './block-weights.js';
import type { DiTConfig } from './config.js';
import type { DiTExecution } from './model.js';
import { STREAM_SLOTS, streamedBlockLayout } from './streaming.js';
import { ditWeightSpec } from './weights.js';

export interface DiTMemoryInput {
  config: DiTConfig;
  /** Rows of the model call: 2 with classifier-free guidance. */
  batch: number;
  /** Latent frames, height and width ([36, 34, 62] for 544x992x204). */
  latent: readonly [number, number, number];
  /** Text tokens per row: Step-LLM (320) and CLIP (77); `keys` = the kept cross-attention keys (default all). */
  text: { llm: number; clip: number; keys?: number };
  dtype: 'f32' | 'bf16';
  /** The CUDA ops make temporaries the CPU kernels keep off the books. */
  backend: 'cpu' | 'cuda';
  execution?: Partial<DiTExecution>;
}

export interface DiTMemoryEstimate {
  /** Weights on the device (streamed: the global tensors and two block slots). */
  weightBytes: number;
  /** Weights in pinned host memory (streaming only). */
  hostWeightBytes: number;
  /** What prepareContext keeps: projections, key lengths, every block's cross-attention K/V. */
  contextBytes: number;
  /** The latents handed to forward (model dtype). */
  inputBytes: number;
  /** Highest bytes the forward holds above weights + context + input (its output included). */
  forwardPeakBytes: number;
  /** The largest set of block temporaries alive at once, above the residual stream entering the block. */
  blockPeakBytes: number;
  /**
   * The forward's peak on a CPU queue that has run nothing since the forward last waited for the
   * device: the live set plus what was freed since (at most the pre-block work and two blocks).
   */
  queuedPeakBytes: number;
  /** One activation [B, N, D] in the model dtype: the unit the block's peak is counted in. */
  activationBytes: number;
  /** weights + context + input + forward peak: device memory a forward needs. */
  totalBytes: number;
}

/**
 * A replay of allocations: current and highest bytes alive; and for a CPU queue that runs behind,
 * the freed bytes still held (by the epoch of work that frees them) and the highest bytes held.
 */
class LiveBytes {
  now = 0;
  peak = 0;
  /** The work being enqueued: 0 before the blocks, i + 1 for block i, then the final layer. */
  epoch = 0;
  #held = new Map<number, number>();
  #heldBytes = 0;
  queuedPeak = 0;
  alloc(bytes: number): number {
    this.now += bytes;
    this.peak = Math.max(this.peak, this.now);
    this.queuedPeak = Math.max(this.queuedPeak, this.now + this.#heldBytes);
    return bytes;
  }
  free(...sizes: number[]): void {
    for (const bytes of sizes) {
      this.now -= bytes;
      this.#held.set(this.epoch, (this.#held.get(this.epoch) ?? 0) + bytes);
      this.#heldBytes += bytes;
    }
  }
  /** The device has run the work of every epoch up to `epoch`: what it freed is gone. */
  ran(epoch: number): void {
    for (const [e, bytes] of this.#held) {
      if (e > epoch) continue;
      this.#heldBytes -= bytes;
      this.#held.delete(e);
    }
  }
}

/** Device bytes of the weights as StepVideoDiT.load holds them. */
export function ditWeightBytes(config: DiTConfig, dtype: 'f32' | 'bf16', execution: Partial<DiTExecution> = {}): { device: number; host: number } {
  const s = DTYPE_SIZE[dtype];
  const fp8 = execution.weights === 'fp8';
  const quantized = (name: string) => fp8 && name.startsWith('transformer_blocks.') && FP8_BLOCK_LINEARS.some((suffix) => name.endsWith(`.${suffix}`));
  let device = 0;
  for (const [name, shape] of ditWeightSpec(config)) {
    if (execution.streaming && name.startsWith('transformer_blocks.')) continue;
    device += quantized(name) ? numel(shape) + shape[0]! * 4 : numel(shape) * s;
  }
  if (!execution.streaming) return { device, host: 0 };
  const { bytes } = streamedBlockLayout(config, dtype, fp8);
  return { device: device + STREAM_SLOTS * bytes, host: config.numLayers * bytes };
}

export function estimateDiTMemory(input: DiTMemoryInput): DiTMemoryEstimate {
  const { config, batch: B, dtype, backend } = input;
  const execution: DiTExecution = { weights: 'model', fp8Activations: backend === 'cuda' ? 'per-row' : 'none', fusedResidual: false, streaming: false, ...input.execution };
  const s = DTYPE_SIZE[dtype];
  const [F, H, W] = input.latent;
  const p = config.patchSize;
  const [Hp, Wp] = [H / p, W / p];
  const N = F * Hp * Wp;
  const D = config.innerDim;
  const keys = input.text.keys ?? input.text.llm + input.text.clip;
  const X = B * N * D * s;
  const fp8 = execution.weights === 'fp8';
  const cuda = backend === 'cuda';

  // Weights and the context prepareContext keeps.
  const weights = ditWeightBytes(config, dtype, execution);
  const crossKv = 2 * B * config.numAttentionHeads * keys * config.attentionHeadDim * s;
  const contextBytes = B * (input.text.llm + input.text.clip) * D * s + B * 4 + config.numLayers * crossKv;
  const inputBytes = B * F * config.inChannels * H * W * s;

  const live = new LiveBytes();
  // A block Linear over `rows` x `k` → `n`: the output first (withOutput), then what the CUDA op
  // allocates inside and frees before it returns.
  const linear = (rows: number, k: number, n: number): number => {
    const out = live.alloc(rows * n * s);
    if (cuda && fp8 && execution.fp8Activations === 'per-row') live.free(live.alloc(rows * k), live.alloc(rows * 4));
    if (cuda && fp8 && execution.fp8Activations === 'none') live.free(live.alloc(n * k * s));
    return out;
  };
  // #linearResidual: consumes its input (freed once the product no longer needs it).
  const linearResidual = (input: number, rows: number, k: number, n: number, gated: boolean): number => {
    if (execution.fusedResidual && !fp8) {
      const out = live.alloc(rows * n * s);
      if (cuda && gated && dtype !== 'f32') live.free(live.alloc(B * n * 4)); // the gate widened to f32
      live.free(input);
      return out;
    }
    const y = linear(rows, k, n);
    live.free(input);
    const out = live.alloc(rows * n * s);
    live.free(y);
    return out;
  };

  // Patch embedding, timestep embedding, modulation rows, RoPE table (f32).
  const patches = live.alloc(B * N * config.inChannels * p * p * s);
  let x = live.alloc(X);
  live.free(patches);
  const small = [B * config.timestepChannels, B * D, B * D, B * D, B * D, 6 * B * D, 6 * B * D].map((n) => live.alloc(n * s));
  const [splitT, splitH, splitW] = config.ropeSplit;
  const rope = live.alloc(2 * (F * (splitT / 2) + Hp * (splitH / 2) + Wp * (splitW / 2)) * 4);

  let blockPeakBytes = 0;
  for (let i = 0; i < config.numLayers; i++) {
    live.epoch = i + 1;
    const entry = live.now;
    const peakBefore = live.peak;
    live.peak = entry;
    const rows = live.alloc(6 * B * D * s);
    // Self-attention.
    const a = live.alloc(X);
    const qkv = linear(B * N, D, 3 * D);
    live.free(a);
    const qkvSplit = [live.alloc(X), live.alloc(X), live.alloc(X)];
    live.free(qkv);
    const mixed = live.alloc(X);
    live.free(...qkvSplit);
    const x1 = linearResidual(mixed, B * N, D, D, true);
    live.free(x);
    // Cross-attention.
    const qProj = linear(B * N, D, D);
    const q2 = live.alloc(X);
    live.free(qProj);
    const crossMixed = live.alloc(X);
    live.free(q2);
    const x2 = linearResidual(crossMixed, B * N, D, D, false);
    live.free(x1);
    // FFN.
    const b = live.alloc(X);
    const hidden = linear(B * N, D, config.ffnDim);
    live.free(b);
    x = linearResidual(hidden, B * N, config.ffnDim, D, true);
    live.free(x2);
    live.free(rows);
    blockPeakBytes = Math.max(blockPeakBytes, live.peak - entry);
    live.peak = Math.max(live.peak, peakBefore);
    // forward() waits for the work up to block i − 1 once block i is enqueued.
    if (i > 0) live.ran(i);
  }

  // Final layer and unpatchify (the output stays with the caller), enqueued before the wait for the last block.
  live.epoch = config.numLayers + 1;
  const outFeatures = config.outChannels * p * p;
  const shiftScale = live.alloc(2 * B * D * s);
  const normed = live.alloc(X);
  live.free(x);
  const projected = live.alloc(B * N * outFeatures * s);
  live.alloc(B * N * outFeatures * s); // the output
  live.free(shiftScale, normed, projected, rope, ...small);

  const forwardPeakBytes = live.peak;
  return {
    weightBytes: weights.device,
    hostWeightBytes: weights.host,
    contextBytes,
    inputBytes,
    forwardPeakBytes,
    blockPeakBytes,
    queuedPeakBytes: live.queuedPeak,
    activationBytes: X,
    totalBytes: weights.device + contextBytes + inputBytes + forwardPeakBytes,
  };
}

