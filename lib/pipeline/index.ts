// The text-to-video pipeline: StepVideo (load, generate, dispose), the generated video's chunks
// and file writing, progress, the memory estimate, and the built-in test model.
export { StepVideo, type CaptionTensors, type GenerateOptions, type StepVideoLoadOptions } from './pipeline.js';
export { GeneratedVideo, VIDEO_FPS, formatFromPath, type ChunkOptions, type SaveOptions, type VideoChunk, type VideoInfo } from './video.js';
export { type JobRequest, type NormalizedVideoSize, RELEASED_DEFAULT_VIDEO, normalizeVideoSize, resolveJob } from './options.js';
export { type LoadMemoryEstimate, type MemoryEstimate, type StreamingRequest, estimateJobMemory, estimateLoadMemory, formatBytes, requireMemory } from './memory.js';
export { EtaTracker, formatDuration, progressBar, type PipelineProgress } from './progress.js';
export { BUILTIN_DEFAULT_VIDEO, BUILTIN_MODEL_VERSION, defaultCacheDir, ensureBuiltinModel } from './builtin/index.js';
