// The model kernel families, each a typed wrapper over its native kernels.
export * from './attention.js';
export * from './norm.js';
