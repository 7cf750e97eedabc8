// `stepvideo calibrate-cache`: fits the 'teacache' step cache's polynomial on the model at hand.
// Sampling runs without caching record, for each pair of consecutive steps, x = the relative L1
// change of the model's cache probe (the first block's modulated input) and, per CFG branch, y = the
// relative L1 change of the model's output; a least-squares polynomial y ≈ f(x) per branch is what
// the cache then accumulates (lib/sampler/cache.ts). Fitted here, on this model, never copied.
import { readFile } from 'node:fs/promises';

import { StepVideoError, asStepVideoError } from '../errors.js';
import * as ops from '../ops.js';
import type { Tensor } from '../tensor.js';
import { type TeaCacheCoefficients, relativeL1 } from './cache.js';
import type { VelocityModel } from './sample.js';

/** The calibration file's name in a model folder. */
export const TEACACHE_FILE = 'stepvideo-teacache.json';
export const TEACACHE_DEGREE = 4;

export interface TeaCacheCalibration {
  method: 'teacache';
  version: 1;
  coefficients: TeaCacheCoefficients;
  degree: number;
  /** Step pairs each branch's fit used, and its root-mean-square residual. */
  fit: { cond: { samples: number; rmse: number }; uncond: { samples: number; rmse: number } };
  /** What the sampling runs were (the fit holds best near them). */
  runs: { prompts: number; steps: number; timeShift: number; cfgScale: number; frames: number; height: number; width: number };
  model: string;
  fittedAt: string;
}

/** Least squares polynomial of `degree`, coefficients highest power first (as polyval takes them). */
export function fitPolynomial(xs: readonly number[], ys: readonly number[], degree: number): number[] {
  if (xs.length !== ys.length || xs.length <= degree) {
    throw new StepVideoError('ERR_ARGUMENT', `a degree-${degree} fit needs more than ${degree} points`, { got: xs.length });
  }
  // Solved in u = x / s (s = max |x|) so the normal equations stay well conditioned, then scaled back.
  const s = Math.max(...xs.map(Math.abs)) || 1;
  const n = degree + 1;
  const ata = Array.from({ length: n }, () => new Float64Array(n));
  const aty = new Float64Array(n);
  for (let i = 0; i < xs.length; i++) {
    const powers = Array.from({ length: n }, (_, k) => (xs[i]! / s) ** k);
    for (let r = 0; r < n; r++) {
      aty[r]! += powers[r]! * ys[i]!;
      for (let c = 0; c < n; c++) ata[r]![c]! += powers[r]! * powers[c]!;
    }
  }
  // A tiny ridge keeps a degenerate sample set (all x equal) solvable.
  const trace = ata.reduce((sum, row, i) => sum + row[i]!, 0);
  for (let i = 0; i < n; i++) ata[i]![i]! += 1e-12 * trace;
  const lowFirst = solve(ata, aty).map((a, k) => a / s ** k);
  return lowFirst.reverse();
}

/** Gaussian elimination with partial pivoting on a small dense system. */
function solve(matrix: Float64Array[], rhs: Float64Array): number[] {
  const n = rhs.length;
  const a = matrix.map((row) => Float64Array.from(row));
  const b = Float64Array.from(rhs);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(a[r]![col]!) > Math.abs(a[pivot]![col]!)) pivot = r;
    [a[col], a[pivot]] = [a[pivot]!, a[col]!];
    [b[col], b[pivot]] = [b[pivot]!, b[col]!];
    for (let r = col + 1; r < n; r++) {
      const f = a[r]![col]! / a[col]![col]!;
      for (let c = col; c < n; c++) a[r]![c]! -= f * a[col]![c]!;
      b[r]! -= f * b[col]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let sum = b[r]!;
    for (let c = r + 1; c < n; c++) sum -= a[r]![c]! * x[c]!;
    x[r] = sum / a[r]![r]!;
  }
  return x;
}

/**
 * A velocity model that records, call after call, the probe's and each branch's output's relative
 * L1 change. Wraps the model a calibration run samples with; one recorder per run.
 */
export class CalibrationRecorder<Context extends Disposable> implements VelocityModel<Context> {
  readonly inner: VelocityModel<Context>;
  readonly branches: number;
  /** Per consecutive pair of calls: [probe change, change of branch 0, change of branch 1?]. */
  readonly pairs: number[][] = [];
  #probe: Float32Array | undefined;
  #outputs: Tensor[] = [];

  constructor(inner: VelocityModel<Context>, branches: number) {
    if (inner.cacheProbe === undefined) throw new StepVideoError('ERR_ARGUMENT', 'this model has no cache probe, so it cannot be calibrated for the teacache step cache');
    this.inner = inner;
    this.branches = branches;
  }

  get device() {
    return this.inner.device;
  }

  get dtype() {
    return this.inner.dtype;
  }

  prepareContext(cond: Parameters<VelocityModel<Context>['prepareContext']>[0]): Context {
    return this.inner.prepareContext(cond);
  }

  async forward(latents: Tensor, timestep: readonly number[], context: Context, options?: Parameters<VelocityModel<Context>['forward']>[3]): Promise<Tensor> {
    const rows = latents.size(0) / this.branches;
    using first = ops.slice(latents, 0, 0, rows);
    const probe = await this.inner.cacheProbe!(first, timestep[0]!);
    const velocity = await this.inner.forward(latents, timestep, context, options);
    const outputs = Array.from({ length: this.branches }, (_, b) => {
      using part = ops.slice(velocity, 0, b * rows, (b + 1) * rows);
      return ops.cast(part, 'f32');
    });
    if (this.#probe !== undefined) {
      const changes = await Promise.all(outputs.map((o, b) => relativeL1Tensor(o, this.#outputs[b]!)));
      this.pairs.push([relativeL1(probe, this.#probe), ...changes]);
    }
    for (const o of this.#outputs) o.dispose();
    this.#outputs = outputs;
    this.#probe = probe;
    return velocity;
  }

  [Symbol.dispose](): void {
    for (const o of this.#outputs) o.dispose();
    this.#outputs = [];
  }
}

async function relativeL1Tensor(a: Tensor, b: Tensor): Promise<number> {
  const sumAbs = async (t: Tensor) => {
    using flat = t.reshape(1, t.numel);
    using magnitude = ops.abs(flat);
    using total = ops.sum(magnitude, 1);
    return (await total.toFloat32())[0]!;
  };
  using difference = ops.sub(a, b);
  const den = await sumAbs(b);
  return den > 0 ? (await sumAbs(difference)) / den : Number.POSITIVE_INFINITY;
}

/** Fits both branches' polynomials from the recorded pairs (an unguided calibration fits the conditional branch only and uses it for both). */
export function fitTeaCache(pairs: readonly number[][], degree = TEACACHE_DEGREE): Pick<TeaCacheCalibration, 'coefficients' | 'fit' | 'degree'> {
  const usable = pairs.filter((p) => p.every(Number.isFinite));
  const branch = (b: number) => {
    const xs = usable.map((p) => p[0]!);
    const ys = usable.map((p) => p[1 + b]!);
    const coefficients = fitPolynomial(xs, ys, degree);
    const residual = xs.map((x, i) => coefficients.reduce((y, c) => y * x + c, 0) - ys[i]!);
    return { coefficients, fit: { samples: xs.length, rmse: Math.sqrt(residual.reduce((s, r) => s + r * r, 0) / xs.length) } };
  };
  const cond = branch(0);
  const uncond = usable[0] !== undefined && usable[0].length > 2 ? branch(1) : cond;
  return { coefficients: { cond: cond.coefficients, uncond: uncond.coefficients }, fit: { cond: cond.fit, uncond: uncond.fit }, degree };
}

/** The coefficients of a calibration file, checked. */
export async function readTeaCacheCoefficients(file: string): Promise<TeaCacheCoefficients> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new StepVideoError('ERR_ARGUMENT', `no teacache calibration at ${file}: run \`stepvideo calibrate-cache --model DIR\` first (or use --cache auto, which needs none)`, { file });
    }
    throw asStepVideoError(error, 'ERR_IO', 'cannot read the teacache calibration', { file });
  }
  let parsed: Partial<TeaCacheCalibration>;
  try {
    parsed = JSON.parse(text) as Partial<TeaCacheCalibration>;
  } catch (error) {
    throw new StepVideoError('ERR_WEIGHTS_FORMAT', `the teacache calibration is not JSON: ${(error as Error).message}`, { file });
  }
  const c = parsed.coefficients;
  const valid = (list: unknown) => Array.isArray(list) && list.length > 0 && list.every((v) => typeof v === 'number' && Number.isFinite(v));
  if (parsed.method !== 'teacache' || c === undefined || !valid(c.cond) || !valid(c.uncond)) {
    throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'the teacache calibration must hold { method: "teacache", coefficients: { cond: [numbers], uncond: [numbers] } }', { file });
  }
  return { cond: c.cond, uncond: c.uncond };
}
