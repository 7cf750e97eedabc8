// The model kernel families, each a typed wrapper over its native kernels.
export * from './attention.js';
export * from './conv.js';
export * from './embedding.js';
export * from './fp8.js';
export * from './linear.js';
export * from './norm.js';
export * from './random.js';
export * from './residual.js';
export * from './rope.js';
export * from './sampler.js';
export * from './split-heads.js';
export * from './swiglu.js';
export * from './vae.js';
