// The video VAE (spec §3, version 2): the model (model.ts: loading, chunked decoding with the
// boundary mix, chunked encoding), its config and its weight layout.
export { FRAMES_PER_CHUNK, LATENT_CHANNELS, LATENTS_PER_CHUNK, RELEASED_VAE_CONFIG, SPATIAL_FACTOR, type VaeConfig, type VaeTowerConfig, readVaeConfig } from './config.js';
export { type DecodeOptions, type DecodedChunk, type EncodeOptions, VAE_WEIGHTS_FILE, type VaeLoadOptions, VideoVAE, mixBoundary } from './model.js';
export { type VaePart, decoderWeightSpec, encoderWeightSpec, randomVaeWeights, vaeWeightSpec } from './weights.js';
