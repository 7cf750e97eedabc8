// The Step-Video-T2V DiT: config, weights, conditioning helpers and the model.
export { type DiTConfig, parseDiTConfig, readDiTConfig } from './config.js';
export { type DiTNumerics, crossAttentionLengths, scaledTimestep, timestepSinusoid } from './conditioning.js';
export {
  type DiTConditioning,
  DiTContext,
  type DiTDType,
  type DiTExecution,
  type DiTForwardOptions,
  type DiTLoadOptions,
  type DiTWeightFormat,
  StepVideoDiT,
} from './model.js';
export { FP8_BLOCK_LINEARS } from './block-weights.js';
export { STREAM_SLOTS, streamedBlockLayout } from './streaming.js';
export { type DiTMemoryEstimate, type DiTMemoryInput, ditWeightBytes, estimateDiTMemory } from './memory-model.js';
export { checkDiTCheckpoint, ditWeightSpec } from './weights.js';
export { type DiTParallelism, ParallelDiT, ParallelDiTContext } from './parallel.js';
export { LORA_LINEARS, type LoraLinear, LoraAdapter, parseLoraSpec } from './lora.js';
