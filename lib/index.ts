// Public API of the stepvideo package.
export { StepVideoError, isStepVideoError, type ErrorCode, type ErrorDetails } from './errors.js';
export { type DType, DTYPES, parseDType, f32ToBf16Bits, bf16BitsToF32, roundBf16, f32ArrayToBf16, bf16ArrayToF32 } from './dtype.js';
export { Device, type DeviceSpec, type MemoryStats, getDevice, defaultDevice, cudaAvailable, cudaDeviceCount, cudaUnavailableReason, backendInfo } from './device.js';
export { Tensor, TensorScope, leakedTensorCount, type TensorOptions } from './tensor.js';
export { opCount, cpuPendingJobs, cudaPoolStats, resetCudaPoolHigh, gemmPlans, type CudaPoolStats, type GemmPlan } from './device-stats.js';
export * as ops from './ops.js';
export * as kernels from './kernels/index.js';
export { openWeights, stripPrefix, renameKeys, readSafetensors, writeSafetensors, type WeightIndex, type TensorRecord, type HostTensor, type TensorData } from './io/index.js';
export { Weights, loadRecords, type LoadOptions, type LoadProgress, type WeightSpec } from './io/load.js';
export { loadTokenizer, StepTokenizer, BertTokenizer, SentencePieceProcessor, type TokenizerKind, type EncodedBatch } from './tokenizers/index.js';
export { TextEncoder, type TextEncoderLoadOptions, type EncodedPrompts } from './models/text-encoder.js';
export { sample, generateNoise, latentShape, flowMatchSigmas, flowMatchTimesteps, guidedPrompts, resolveSamplerSettings, SAMPLER_PRESETS, POS_MAGIC, NEG_MAGIC, type SampleOptions, type SampleProgress, type TextConditioning, type VelocityModel, type SamplerSettings, type SamplerPresetName, type VideoSize } from './sampler/index.js';
export { StepVideo, GeneratedVideo, ensureBuiltinModel, BUILTIN_DEFAULT_VIDEO, type GenerateOptions, type StepVideoLoadOptions, type VideoChunk, type VideoInfo, type SaveOptions, type PipelineProgress } from './pipeline/index.js';
