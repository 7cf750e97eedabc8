// The Step-Video-T2V DiT: config, weights, conditioning helpers and the model.
export { type DiTConfig, parseDiTConfig, readDiTConfig } from './config.js';
export { type DiTNumerics, crossAttentionLengths, scaledTimestep, timestepSinusoid } from './conditioning.js';
export {
  type DiTConditioning,
  DiTContext,
  type DiTDType,
  type DiTForwardOptions,
  type DiTLoadOptions,
  StepVideoDiT,
} from './model.js';
export { checkDiTCheckpoint, ditWeightSpec } from './weights.js';
