// Diffusion-DPO adapted to flow matching: the preference loss `stepvideo dpo` minimises, and what
// it reports. For a pair (chosen w, rejected l) noised to the same noise fraction σ with the same
// noise ε, x_σ = (1 − σ)·x0 + σ·ε. Step-Video's flow runs its time t from 0 (noise) to 1 (data)
// (spec §4: the sampler steps x += v·dt with dt > 0), so the DiT sees t = 1 − σ and its velocity
// target is dx/dt = x0 − ε. e = mean over a sample's elements of (v_θ(x_σ, 1 − σ) − (x0 − ε))²,
// for the trained model (e) and the frozen reference (e_ref: the base model with the LoRA
// switched off). Then, per pair,
//   z = −β/2 · ((e_w − e_w,ref) − (e_l − e_l,ref)),   loss = −log σ(z) = softplus(−z),
// and the batch loss is the mean. z > 0 means the trained model moved toward the chosen video more
// than toward the rejected one (the implicit reward r = −β/2·(e − e_ref) is higher for w than l).
// The issue states the target as ε − x0 at timestep σ: the SD3 convention, where σ = 1 is noise.
// For this model that is the velocity's negative at the mirrored time; trained so, the adapter
// fitted the opposite of what the sampler integrates, and generation moved toward the rejected
// kind (test/cpu/dpo-train.test.ts's toy set, measured before the fix).
// Sources: Wallace et al. 2023, "Diffusion Model Alignment Using Direct Preference Optimization"
// (eq. 14, ε-prediction; here the velocity error takes the noise error's place, the weighting folded
// into β); Liu et al. 2025, "Improving Video Generation with Human Feedback" (Flow-DPO, the same
// loss on a rectified-flow video model); the statement of it.
import { StepVideoError } from '../errors.js';

export interface DpoErrors {
  /** Per pair: the trained model's mean squared velocity error on the chosen and rejected videos. */
  chosen: readonly number[];
  rejected: readonly number[];
  /** The same for the reference (LoRA off). */
  chosenRef: readonly number[];
  rejectedRef: readonly number[];
}

export interface DpoLoss {
  /** The batch mean of −log σ(z). */
  loss: number;
  /** z per pair (the implicit reward margin). */
  margins: number[];
  /** Share of pairs with z > 0. */
  accuracy: number;
  /** Mean z. */
  margin: number;
  /** ∂loss/∂e for the trained model's errors (the reference's are constants): what the backward pass starts from. */
  grad: { chosen: number[]; rejected: number[] };
}

/** −log σ(z), without overflow for large |z|. */
export function negLogSigmoid(z: number): number {
  return z >= 0 ? Math.log1p(Math.exp(-z)) : -z + Math.log1p(Math.exp(z));
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

export function dpoLoss(errors: DpoErrors, beta: number): DpoLoss {
  const n = errors.chosen.length;
  if (!(beta > 0) || !Number.isFinite(beta)) throw new StepVideoError('ERR_ARGUMENT', 'the DPO beta must be a positive number', { got: beta });
  if (n === 0 || [errors.rejected, errors.chosenRef, errors.rejectedRef].some((list) => list.length !== n)) {
    throw new StepVideoError('ERR_SHAPE', 'the DPO errors need one value per pair in each list', { got: [errors.chosen, errors.rejected, errors.chosenRef, errors.rejectedRef].map((l) => l.length).join(', ') });
  }
  const margins: number[] = [];
  const gradChosen: number[] = [];
  const gradRejected: number[] = [];
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const values = [errors.chosen[i]!, errors.rejected[i]!, errors.chosenRef[i]!, errors.rejectedRef[i]!];
    if (values.some((v) => !Number.isFinite(v) || v < 0)) throw new StepVideoError('ERR_NOT_FINITE', `DPO pair ${i}: squared errors must be finite and non-negative`, { got: values.join(', ') });
    const z = (-beta / 2) * (values[0]! - values[2]! - (values[1]! - values[3]!));
    margins.push(z);
    loss += negLogSigmoid(z) / n;
    // d(−log σ(z))/dz = −σ(−z); dz/de_w = −β/2, dz/de_l = +β/2.
    const outer = sigmoid(-z) / n;
    gradChosen.push((outer * beta) / 2);
    gradRejected.push((-outer * beta) / 2);
  }
  return {
    loss,
    margins,
    accuracy: margins.filter((z) => z > 0).length / n,
    margin: margins.reduce((a, b) => a + b, 0) / n,
    grad: { chosen: gradChosen, rejected: gradRejected },
  };
}

/**
 * The noise fraction σ of a training pair: u ~ U(0, 1) through the sampler's time shift s (the
 * sampler's t = 1 − σ is then distributed as its schedule spends steps; σ = 1 is pure noise).
 */
export function trainingSigma(u: number, shift: number): number {
  if (!(u >= 0 && u <= 1)) throw new StepVideoError('ERR_ARGUMENT', 'u must be in [0, 1]', { got: u });
  return (shift * u) / (1 + (shift - 1) * u);
}
