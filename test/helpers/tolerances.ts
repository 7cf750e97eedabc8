// The bounds of the model-level GPU checks, as derived in docs/TOLERANCES.md before any GPU run.
// Notation: r is the official bf16 run's own rounding noise, measured as the distance between the
// golden's `*_bf16_official` output and the CPU twin that reproduces the official quantisation points
// in f32 arithmetic (where a model has none, the f32 output: it equals the float64 reference to 1e-6).
// The GPU's bf16 path rounds at no more points than the official code (fused ops round once), so its
// own noise rho is held to the golden README's factor: rho = 1.25 r. Then, by the triangle inequality
// through the twin, a bf16 output is within rho of the twin and within rho + r of the official output.

/** The golden README's factor: our bf16 noise at most 1.25 x the official bf16 run's. */
export const GPU_NOISE_FACTOR = 1.25;

/** rms relative error of one rounding to bf16 (round to nearest even, log-uniform mantissas): 2^-8/sqrt(3)·sqrt(E[1/m²]). */
export const BF16_ROUNDING_RMS = 1.66e-3;

/** rho: the GPU's own bf16 noise allowance on a model output, from the official run's noise r. */
export const bf16Allowance = (officialNoise: number): number => GPU_NOISE_FACTOR * officialNoise;

/** A bf16 output against the official bf16 output: rho + r. */
export const bf16VsOfficial = (officialNoise: number): number => (GPU_NOISE_FACTOR + 1) * officialNoise;

/**
 * A captured DiT intermediate against its twin: 2 rho. Emulated rounding noise (test/golden/dit.test.ts,
 * "rounding-noise sensitivity") puts at most 1.6x the output's relative noise on any intermediate
 * (the branch outputs attn1, attn2, ff); 2 leaves 25% for the roundings the emulation leaves out.
 */
export const INTERMEDIATE_FACTOR = 2;

/**
 * FP8 block weights on CUDA against the CPU twin with the same FP8 options (docs/TOLERANCES.md, "FP8
 * and fused-residual DiT"): rho of the bf16 model, plus dW (the twin over the FP8 round trip rounded to
 * bf16 against the exact round trip: CUDA dequantizes into a bf16 temporary where it has no FP8 GEMM),
 * plus, with per-row FP8 activations, the quantization of the GPU's own (noisier) activations: its
 * effect is at most 1.25 dAct (dAct: per-row twin against the weights-only twin, the effect of
 * quantizing the activations at all), and the per-row twin's own 1 dAct on the far side of the triangle.
 */
export function fp8Bound(rho: number, dW: number, dAct: number, activations: 'none' | 'per-row', against: 'same twin' | 'weights-only twin' = 'same twin'): number {
  if (activations === 'none') return rho + dW;
  return rho + dW + (against === 'same twin' ? GPU_NOISE_FACTOR + 1 : GPU_NOISE_FACTOR) * dAct;
}

/**
 * Reference distances measured on the CPU while writing docs/TOLERANCES.md (the CPU golden suites
 * re-measure each and fail if one moved by more than 2%, so the document stays true).
 */
export const MEASURED = {
  /** DiT: twin with the official numerics against output_bf16_official. */
  ditOfficialNoise: 6.79e-3,
  /** sampler_case: the sampler over that twin against latents_final_bf16_official. */
  samplerOfficialNoise: 1.481e-2,
  /** FP8 DiT (official numerics): per-row twin against the weights-only twin (output). */
  ditFp8ActivationEffect: 2.234e-2,
  /** FP8 DiT: weights-only twin over the bf16-rounded round trip against the exact one (output). */
  ditFp8Bf16Weights: 1.39e-3,
} as const;

/**
 * float32 limits of the CPU golden cases against the float64 references (docs/TOLERANCES.md, "CPU
 * golden cases, float32"): 10x the CPU backend's measured error, per case and per captured DiT
 * intermediate (keys as in dit_case.safetensors), rounded up to two digits.
 */
export const F32_GOLDEN = {
  dit: {
    output: 3.7e-5,
    'inter.adaln_single': 7.2e-5,
    'inter.adaln_single.embedded_timestep': 7.0e-5,
    'inter.caption_projection': 4.0e-6,
    'inter.clip_projection': 1.8e-6,
    'inter.pos_embed': 1.5e-6,
    'inter.transformer_blocks.0': 1.2e-5,
    'inter.transformer_blocks.0.attn1': 5.6e-5,
    'inter.transformer_blocks.0.attn2': 7.0e-6,
    'inter.transformer_blocks.0.ff': 2.3e-5,
    'inter.transformer_blocks.1': 1.6e-5,
  } as Readonly<Record<string, number>>,
  /** sampler_case latents_final (3 steps, cfg 9). */
  sampler: 1.2e-5,
  /** vae_case decoded, and every slice of it (chunks, boundary frames). */
  vaeDecode: 7.1e-6,
  /** vae_case encoded_moments, and the mode (the mean half). */
  vaeEncode: 7.1e-6,
  stepLlm: 5.0e-6,
  clip: 2.6e-6,
} as const;

/** The f32 golden limit of a DiT tensor (`output` or an `inter.*` key); throws for a name without one. */
export function ditGoldenLimit(name: string): number {
  const limit = F32_GOLDEN.dit[name];
  if (limit === undefined) throw new Error(`no f32 golden limit for DiT tensor ${name}: measure it and add it to F32_GOLDEN (docs/TOLERANCES.md)`);
  return limit;
}

/** Asserts a re-measured reference distance is where docs/TOLERANCES.md says (within 2%). */
export function isAsRecorded(measured: number, recorded: number): boolean {
  return Math.abs(measured - recorded) <= 0.02 * recorded;
}
