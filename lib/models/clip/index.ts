export { ClipTextEncoder, type ClipLoadOptions, type MaskValues, keyLengthsFromMask } from './model.js';
export { type ClipConfig, CLIP_UNUSED_TENSORS, checkClipWeights, clipWeightSpec, parseClipConfig } from './config.js';
