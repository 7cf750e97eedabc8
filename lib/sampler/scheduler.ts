// The flow-matching schedule of the official sampler (spec §4: FlowMatchDiscreteScheduler, Euler
// solver, reverse = false), the official sampling presets and the prompt "magic" strings.
import { StepVideoError } from '../errors.js';

/**
 * σ_0..σ_N of an N-step schedule with time shift s, as float32 values identical to the official
 * scheduler's: u = linspace(1, 0, N + 1) in float32, filled from both ends the way torch does;
 * û = s·u / (1 + (s − 1)·u) (the SD3 shift); σ = 1 − û, rising from 0 (noise) to 1 (data).
 * The model sees t_i = σ_i for i < N (in [0, 1); it multiplies by 1000 itself); the Euler step i
 * moves the latents by v·(σ_{i+1} − σ_i). Every operation is rounded to float32 where torch rounds.
 */
export function flowMatchSigmas(steps: number, shift: number): Float32Array {
  requireSteps(steps);
  requireShift(shift);
  const f = Math.fround;
  const count = steps + 1;
  // torch.linspace(start, end, count): step = (end − start)/(count − 1); the first half is
  // start + step·i, the second half end − step·(count − 1 − i).
  const step = f(-1 / steps);
  const halfway = Math.floor(count / 2);
  const scale = f(shift);
  const scaleMinusOne = f(shift - 1); // (shift − 1) is a Python float, rounded once to float32
  const sigmas = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const u = i < halfway ? f(1 + f(step * i)) : f(0 - f(step * (count - 1 - i)));
    const shifted = f(f(scale * u) / f(1 + f(scaleMinusOne * u)));
    sigmas[i] = f(1 - shifted);
  }
  return sigmas;
}

/** The timesteps fed to the model: σ_0..σ_{N−1}. */
export function flowMatchTimesteps(steps: number, shift: number): Float32Array {
  return flowMatchSigmas(steps, shift).subarray(0, steps);
}

export interface SamplerSettings {
  /** Euler steps (model calls). */
  steps: number;
  /** Classifier-free guidance scale g; guidance (and the unconditional pass) is on when g > 1. */
  cfgScale: number;
  /** The SD3 time shift s of the schedule. */
  timeShift: number;
}

/**
 * The official settings: `base` for Step-Video-T2V (50 steps, cfg 9, shift 13: the README and
 * pipeline default; the argparse default shift of 7 is not what the README runs), `turbo` for
 * Step-Video-T2V-Turbo (15 steps, cfg 5, shift 17).
 */
export const SAMPLER_PRESETS = {
  base: { steps: 50, cfgScale: 9, timeShift: 13 },
  turbo: { steps: 15, cfgScale: 5, timeShift: 17 },
} as const satisfies Record<string, SamplerSettings>;

export type SamplerPresetName = keyof typeof SAMPLER_PRESETS;

/**
 * The official CLI's default positive "magic" (argparse --pos_magic): appended to the user's
 * prompt with no separator.
 */
export const POS_MAGIC = '超高清、HDR 视频、环境光、杜比全景声、画面稳定、流畅动作、逼真的细节、专业级构图、超现实主义、自然、生动、超细节、清晰。';

/** The official CLI's default negative prompt (argparse --neg_magic), used alone as the negative row. */
export const NEG_MAGIC = '画面暗、低分辨率、不良手、文本、缺少手指、多余的手指、裁剪、低质量、颗粒状、签名、水印、用户名、模糊。';

export interface PromptMagic {
  /** Appended to the prompt (default POS_MAGIC; '' for none). */
  posMagic?: string;
  /** The negative prompt (default NEG_MAGIC). */
  negMagic?: string;
}

/**
 * The two text rows the caption encoders receive, in the official order: [prompt + posMagic,
 * negMagic]. The prompt and the magic are joined directly, as the official pipeline does.
 */
export function guidedPrompts(prompt: string, magic: PromptMagic = {}): [positive: string, negative: string] {
  const { posMagic = POS_MAGIC, negMagic = NEG_MAGIC } = magic;
  return [prompt + posMagic, negMagic];
}

/** The preset's settings with the given overrides applied and validated. */
export function resolveSamplerSettings(overrides: Partial<SamplerSettings> & { preset?: SamplerPresetName } = {}): SamplerSettings {
  const presetName = overrides.preset ?? 'base';
  const preset = SAMPLER_PRESETS[presetName] as SamplerSettings | undefined;
  if (preset === undefined) {
    throw new StepVideoError('ERR_ARGUMENT', 'unknown sampler preset', { expected: Object.keys(SAMPLER_PRESETS).join(' or '), got: presetName });
  }
  const settings = {
    steps: overrides.steps ?? preset.steps,
    cfgScale: overrides.cfgScale ?? preset.cfgScale,
    timeShift: overrides.timeShift ?? preset.timeShift,
  };
  requireSteps(settings.steps);
  requireShift(settings.timeShift);
  if (!Number.isFinite(settings.cfgScale)) throw new StepVideoError('ERR_ARGUMENT', 'cfgScale must be a finite number', { got: settings.cfgScale });
  return settings;
}

function requireSteps(steps: number): void {
  if (!Number.isInteger(steps) || steps < 1 || steps > 10_000) {
    throw new StepVideoError('ERR_ARGUMENT', 'steps must be an integer', { expected: 'an integer in [1, 10000]', got: steps });
  }
}

function requireShift(shift: number): void {
  if (!Number.isFinite(shift) || shift <= 0) {
    throw new StepVideoError('ERR_ARGUMENT', 'timeShift must be a positive number', { got: shift });
  }
}
