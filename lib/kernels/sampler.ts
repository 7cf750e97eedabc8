// Typed wrapper of the sampler family (native/sampler.h): one fused pass per denoising step for
// classifier-free guidance, the f32 Euler update and the next model input.
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { requireFloat, sameDevice } from '../op-utils.js';
import { formatShape } from '../shape.js';
import type { Tensor } from '../tensor.js';

export interface CfgEulerOptions {
  /**
   * Classifier-free guidance scale g. When given, velocity holds two batches, [conditional;
   * unconditional], and v = u + g·(c − u) is formed with each operation rounded to the velocity's
   * dtype (the official bf16 quantisation point; exact in f32). Omit it for a plain Euler step.
   */
  guidanceScale?: number;
  /** σ_{i+1} − σ_i. */
  dt: number;
  /** Receives the updated latents in the model dtype, once per velocity batch: the next model input. */
  nextInput?: Tensor;
}

/**
 * One Euler step x ← x + v·dt on the f32 latents x, in place (enqueued). velocity is the model
 * output in the model dtype, with 2·numel(x) elements under guidance and numel(x) without.
 */
export function cfgEulerStep(x: Tensor, velocity: Tensor, options: CfgEulerOptions): void {
  const { guidanceScale, dt, nextInput } = options;
  sameDevice('cfgEulerStep', x, velocity, nextInput);
  requireFloat('cfgEulerStep', velocity);
  if (x.dtype !== 'f32') throw new StepVideoError('ERR_DTYPE', 'cfgEulerStep: the latents are kept in f32', { got: x.dtype, tensor: 'x' });
  if (!Number.isFinite(dt) || (guidanceScale !== undefined && !Number.isFinite(guidanceScale))) {
    throw new StepVideoError('ERR_ARGUMENT', 'cfgEulerStep: dt and guidanceScale must be finite', { got: { dt, guidanceScale } });
  }
  const copies = guidanceScale === undefined ? 1 : 2;
  for (const [name, t] of [['velocity', velocity], ['nextInput', nextInput]] as const) {
    if (t !== undefined && t.numel !== copies * x.numel) {
      throw new StepVideoError('ERR_SHAPE', `cfgEulerStep: ${name} must hold ${copies === 2 ? 'two batches ([cond; uncond]) of ' : ''}the latents' elements`, {
        expected: `${copies} × ${x.numel} elements (latents ${formatShape(x.shape)})`,
        got: formatShape(t.shape),
        tensor: name,
      });
    }
  }
  if (nextInput !== undefined && nextInput.dtype !== velocity.dtype) {
    throw new StepVideoError('ERR_DTYPE', "cfgEulerStep: nextInput must have the velocity's (model) dtype", { expected: velocity.dtype, got: nextInput.dtype, tensor: 'nextInput' });
  }
  opsOn(x.device).cfgEulerStep(x.handle, velocity.handle, nextInput?.handle ?? null, copies === 2, guidanceScale ?? 1, dt);
}
