// Flow-matching sampling (spec §4): the schedule, the official presets and prompt magic, seeded
// noise, and the denoising loop over the DiT.
//
//   const dit = await StepVideoDiT.load(dir, { device: 'cuda', dtype: 'bf16' });
//   const latents = await sample(dit, {
//     noise: { seed: 42, shape: latentShape({ frames: 204, height: 544, width: 992 }) },
//     text: { y, yMask, clip },         // rows [prompt + POS_MAGIC, NEG_MAGIC] from the caption encoders
//     preset: 'base',                   // or 'turbo'; steps / cfgScale / timeShift override it
//     signal, onProgress: (p) => console.log(`${p.step}/${p.total}, ${Math.round(p.etaMs / 1000)} s left`),
//   });
export { generateNoise, latentShape, LATENT_CHANNELS, type VideoSize } from './noise.js';
export {
  sample,
  type BlockProgress,
  type SampleOptions,
  type SampleProgress,
  type TextConditioning,
  type VelocityConditioning,
  type VelocityModel,
} from './sample.js';
export {
  flowMatchSigmas,
  flowMatchTimesteps,
  guidedPrompts,
  NEG_MAGIC,
  POS_MAGIC,
  resolveSamplerSettings,
  SAMPLER_PRESETS,
  type PromptMagic,
  type SamplerPresetName,
  type SamplerSettings,
} from './scheduler.js';
