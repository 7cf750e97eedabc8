// Device memory of one DPO training step with LoRA on the DiT, from the DiT's own memory model: a
// PREDICTION until a GPU measures it. The step is the one lib/training/dpo-step.ts runs: no-grad
// forwards of the reference and of the trained model on each video (for e and e_ref), then one
// backward per video with per-block gradient checkpointing (the block inputs are kept, each block
// recomputed once in the backward), accumulating the LoRA gradients; AdamW on f32 master weights.
// `offloadCheckpoints` models keeping the checkpoints in host memory (trainDpo's option of that name).
import { DTYPE_SIZE } from '../dtype.js';
import type { DiTConfig } from '../models/dit/config.js';
import { LORA_LINEARS, loraLinearShapes } from '../models/dit/lora.js';
import { estimateDiTMemory, ditWeightBytes } from '../models/dit/memory-model.js';

export interface DpoMemoryInput {
  config: DiTConfig;
  /** Latent frames, height, width ([36, 34, 62] for 544x992x204). */
  latent: readonly [number, number, number];
  rank: number;
  /** The base weights: as released (bf16) or FP8 e4m3. */
  base: 'bf16' | 'fp8';
  /** Videos run through the backward at once: 1 (chosen, then rejected) or 2 (both together). */
  rowsPerBackward: 1 | 2;
  /** Keep the checkpointed block inputs in pinned host memory instead of on the device. */
  offloadCheckpoints: boolean;
}

export interface DpoMemoryEstimate {
  loraParameters: number;
  /** bf16 LoRA weights used in compute, plus f32 master weights, AdamW's two moments and the f32 gradients. */
  loraBytes: number;
  baseWeightBytes: number;
  /** The text context of one row (cross-attention K/V of every block). */
  contextBytes: number;
  /** One block input [rows, N, D] bf16 per block, kept for the backward. */
  checkpointBytes: number;
  /** Where the checkpoints live when offloaded. */
  hostBytes: number;
  /** The recomputed block's forward temporaries and its backward's: about twice the forward block peak. */
  backwardPeakBytes: number;
  /** Everything on the device at the peak. */
  deviceBytes: number;
}

export function estimateDpoMemory(input: DpoMemoryInput): DpoMemoryEstimate {
  const { config, latent, rank, rowsPerBackward } = input;
  const shapes = loraLinearShapes(config);
  const perBlock = LORA_LINEARS.reduce((sum, linear) => sum + rank * (shapes[linear][0] + shapes[linear][1]), 0);
  const loraParameters = perBlock * config.numLayers;
  // bf16 compute copy (2) + f32 master (4) + AdamW m and v (8) + f32 gradient (4).
  const loraBytes = loraParameters * (2 + 4 + 8 + 4);
  const baseWeightBytes = ditWeightBytes(config, 'bf16', { weights: input.base === 'fp8' ? 'fp8' : 'model' }).device;
  const forward = estimateDiTMemory({ config, batch: rowsPerBackward, latent, text: { llm: 320, clip: 77 }, dtype: 'bf16', backend: 'cuda', execution: { weights: input.base === 'fp8' ? 'fp8' : 'model' } });
  const tokens = latent[0] * (latent[1] / config.patchSize) * (latent[2] / config.patchSize);
  const checkpointBytes = config.numLayers * rowsPerBackward * tokens * config.innerDim * DTYPE_SIZE.bf16;
  const backwardPeakBytes = 2 * forward.blockPeakBytes + forward.activationBytes;
  const onDevice = input.offloadCheckpoints ? 0 : checkpointBytes;
  return {
    loraParameters,
    loraBytes,
    baseWeightBytes,
    contextBytes: forward.contextBytes,
    checkpointBytes,
    hostBytes: input.offloadCheckpoints ? checkpointBytes : 0,
    backwardPeakBytes,
    deviceBytes: baseWeightBytes + loraBytes + forward.contextBytes + forward.inputBytes + onDevice + backwardPeakBytes,
  };
}
