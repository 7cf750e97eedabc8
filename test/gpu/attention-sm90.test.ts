// The Hopper attention kernel (cuda/attention_sm90.cuh, kernel policy attention = hopper) on an sm_90
// GPU, written without one and opt-in until this suite passes on the H200. Every schedule and ring
// depth (policy hopperSchedule = serial | overlap | pingpong, hopperStages = 2 | 3) runs
// against the CPU twin (f32, exact softmax, on the same bf16 values) and against the mma kernel:
// its bf16 error must be within 1.25x of the mma kernel's, measured against the same reference.
// N in {1, 127, 129, 4,096, 75,888}, both batch items with different key-prefix lengths, random
// non-zero inputs, NaN in masked keys; the real sizes compare sampled rows with the CPU twin and
// the whole output with the mma kernel. Skipped, with the reason, where there is no sm_90 GPU.
import { describe, expect, it } from 'vitest';

import { roundBf16 } from '../../lib/dtype.js';
import { backendInfo, getDevice } from '../../lib/device.js';
import { StepVideoError } from '../../lib/errors.js';
import { kernelPolicyFromEnvironment } from '../../lib/kernel-policy.js';
import { attention, attentionKernel, type AttentionOptions } from '../../lib/kernels/attention.js';
import { randomNormal } from '../../lib/kernels/random.js';
import { cast, scale, square, sub, sum } from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { expectRelErr, relErr } from '../helpers/compare.js';
import { describeGpu, fitEmulated, gpuAvailable, gpuSkipReason, withPolicy } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';

// ---- where the suite can run ----

function hopperSkipReason(): string {
  if (!gpuAvailable) return gpuSkipReason;
  const capability = getDevice('cuda').info().computeCapability;
  if (capability !== '9.0') return `compute capability ${capability}, the Hopper kernel needs 9.0`;
  if (!backendInfo().cudaArchitectures.includes('90a')) return `the addon was built for ${backendInfo().cudaArchitectures}, without sm_90a`;
  return '';
}

function describeHopper(name: string, body: () => void): void {
  const reason = hopperSkipReason();
  if (reason !== '' && gpuAvailable) {
    describe.skip(`${name} [skipped: ${reason}]`, body);
    return;
  }
  describeGpu(name, body);  // skips itself when there is no GPU at all
}

// ---- kernel selection ----

interface Variant {
  schedule: 'serial' | 'overlap' | 'pingpong';
  stages: 2 | 3;
}
const VARIANTS: Variant[] = (['serial', 'overlap', 'pingpong'] as const).flatMap((schedule) => ([2, 3] as const).map((stages) => ({ schedule, stages })));
const DEFAULT_VARIANT: Variant = { schedule: 'pingpong', stages: 2 };
const label = (v: Variant): string => `${v.schedule}, ${v.stages} stages`;

const onHopper = <T>(variant: Variant, fn: () => T): T =>
  withPolicy({ attention: 'hopper', hopperSchedule: variant.schedule, hopperStages: variant.stages }, fn);
const onMma = <T>(fn: () => T): T => withPolicy({ attention: 'mma' }, fn);

function expectErrorCode(fn: () => unknown, code: string, pattern?: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(StepVideoError);
  expect((caught as StepVideoError).code).toBe(code);
  if (pattern) expect((caught as Error).message).toMatch(pattern);
}

/** flash-attention's rule for bf16 kernels: twice the error of rounding the exact result, plus a floor. */
function bf16Rule(reference: ArrayLike<number>): number {
  return 2 * relErr(Array.from(reference, roundBf16), reference) + 1e-3;
}

/**
 * The Hopper kernel's error may be at most 1.25x the mma kernel's on the same inputs (both against
 * the same reference; they round P and the output alike and differ only in summation order).
 */
function expectWithinMma(hopper: ArrayLike<number>, mma: ArrayLike<number>, reference: ArrayLike<number>, tolerance: number, what: string): void {
  const mmaErr = expectRelErr(mma, reference, tolerance, `${what}: mma kernel`);
  const hopperErr = expectRelErr(hopper, reference, tolerance, `${what}: Hopper kernel`);
  expect(hopperErr, `${what}: Hopper rel err ${hopperErr.toExponential(3)} vs mma ${mmaErr.toExponential(3)}`).toBeLessThanOrEqual(1.25 * mmaErr + 1e-5);
}

/** Bit-for-bit equality, naming the first differing element. */
function expectIdentical(got: Float32Array, expected: Float32Array, what: string): void {
  expect(got.length, what).toBe(expected.length);
  const at = got.findIndex((x, i) => !Object.is(x, expected[i]));
  expect(at, `${what}: first difference at element ${at} (${got[at]} vs ${expected[at]})`).toBe(-1);
}

// ---- cases up to a few thousand tokens: whole outputs against the CPU twin ----

interface Spec {
  name: string;
  B: number; H: number; Hkv: number; Nq: number; Nk: number;
  kvLen?: number[];
  /** Keys and values at or past kvLen hold NaN: the kernel must neither use nor propagate them. */
  nanPadding?: boolean;
  seed: number;
}

// On the emulated device (test/helpers/gpu.ts) each kernel runs about 1 GFLOP/s and every spec runs
// seven of them: the thousands-of-tokens specs keep their structure (several query blocks and key
// tiles, the ring wrapping at both depths, a kv_len cut inside a tile, NaN past it) at a few hundred.
function fitSpec(spec: Spec, emulated: Partial<Spec>, change: string): Spec {
  const fitted = fitEmulated(spec, { ...spec, ...emulated }, `${change} to fit CI time`);
  return { ...fitted.value, name: spec.name + fitted.note };
}

const SPECS: Spec[] = [
  { name: 'N=1, kv_len [1, 0] (the second item sees no key: zeros)', B: 2, H: 2, Hkv: 2, Nq: 1, Nk: 1, kvLen: [1, 0], seed: 900 },
  { name: 'N=127, kv_len [127, 50]', B: 2, H: 3, Hkv: 3, Nq: 127, Nk: 127, kvLen: [127, 50], seed: 901 },
  { name: 'N=129 (two query blocks, two key tiles), kv_len [129, 128]', B: 2, H: 2, Hkv: 2, Nq: 129, Nk: 129, kvLen: [129, 128], seed: 902 },
  fitSpec({ name: 'N=4,096 self-attention (no kv_len)', B: 2, H: 2, Hkv: 2, Nq: 4096, Nk: 4096, seed: 903 },
    { Nq: 520, Nk: 520 }, 'N 4,096 -> 520'),
  fitSpec({ name: 'N=4,096, kv_len [4096, 3001], NaN past kv_len', B: 2, H: 2, Hkv: 2, Nq: 4096, Nk: 4096, kvLen: [4096, 3001], nanPadding: true, seed: 904 },
    { Nq: 520, Nk: 520, kvLen: [520, 441] }, 'N 4,096 -> 520, kv_len [520, 441]'),
  fitSpec({ name: 'cross-attention 3,001 x 397 keys, kv_len [397, 250], NaN past kv_len', B: 2, H: 3, Hkv: 3, Nq: 3001, Nk: 397, kvLen: [397, 250], nanPadding: true, seed: 905 },
    { H: 2, Hkv: 2, Nq: 259 }, '3,001 -> 259 queries, 3 -> 2 heads'),
  fitSpec({ name: 'GQA 4 heads / 2 groups, N=700, kv_len [700, 333]', B: 2, H: 4, Hkv: 2, Nq: 700, Nk: 700, kvLen: [700, 333], seed: 906 },
    { Nq: 300, Nk: 300, kvLen: [300, 133] }, 'N 700 -> 300, kv_len [300, 133]'),
  { name: 'kv_len [-5 (< 0), 9000 (> Nk)], N=300', B: 2, H: 2, Hkv: 2, Nq: 300, Nk: 300, kvLen: [-5, 9000], seed: 907 },
];

interface HostInputs { q: Float32Array; k: Float32Array; v: Float32Array }

function makeInputs(spec: Spec): { exact: HostInputs; padded: HostInputs } {
  const { B, H, Hkv, Nq, Nk, D } = { ...spec, D: 128 };
  const rng = new Rng(spec.seed);
  const exact = {
    q: Float32Array.from(randn(rng, B * H * Nq * D, 1.5), roundBf16),
    k: Float32Array.from(randn(rng, B * Hkv * Nk * D), roundBf16),
    v: Float32Array.from(randn(rng, B * Hkv * Nk * D), roundBf16),
  };
  if (!spec.nanPadding || !spec.kvLen) return { exact, padded: exact };
  const padded = { q: exact.q, k: exact.k.slice(), v: exact.v.slice() };
  for (let b = 0; b < B; b++) {
    const from = Math.min(Math.max(spec.kvLen[b]!, 0), Nk);
    for (let h = 0; h < Hkv; h++) {
      padded.k.fill(NaN, ((b * Hkv + h) * Nk + from) * D, (b * Hkv + h + 1) * Nk * D);
      padded.v.fill(NaN, ((b * Hkv + h) * Nk + from) * D, (b * Hkv + h + 1) * Nk * D);
    }
  }
  return { exact, padded };
}

async function cpuTwin(spec: Spec, inputs: HostInputs): Promise<Float32Array> {
  const { B, H, Hkv, Nq, Nk } = spec;
  using q = Tensor.from(inputs.q, [B, H, Nq, 128], { device: 'cpu' });
  using k = Tensor.from(inputs.k, [B, Hkv, Nk, 128], { device: 'cpu' });
  using v = Tensor.from(inputs.v, [B, Hkv, Nk, 128], { device: 'cpu' });
  using kvLen = spec.kvLen ? Tensor.from(Int32Array.from(spec.kvLen), [B], { device: 'cpu' }) : undefined;
  using out = attention(q, k, v, kvLen ? { kvLen } : {});
  return out.toFloat32();
}

// ---- real sizes: generated on the GPU, sampled rows against the CPU twin ----

/** Seeded standard-normal [B, H, N, 128] bf16 data made on the GPU (Philox), times `std`. */
function gpuNormal(shape: [number, number, number, number], seed: number, std: number): Tensor {
  using unit = randomNormal(shape, { seed, dtype: 'bf16', device: 'cuda' });
  return scale(unit, std);
}

/** Rows [start, start + count) of (b, h) of a [B, H, N, 128] tensor, on the host. */
async function headRows(t: Tensor, b: number, h: number, start: number, count: number): Promise<Float32Array> {
  const [, H, N] = t.shape as [number, number, number, number];
  using flat = t.reshape([t.numel / 128, 128]);
  using rows = flat.narrow((b * H + h) * N + start, count);
  using onHost = await rows.to('cpu');
  return onHost.toFloat32();
}

/** Output rows (b, i, h) of a [B, Nq, H, 128] tensor, on the host, in pick order. */
async function outputRows(out: Tensor, picks: Array<{ b: number; h: number; rows: number[] }>): Promise<Float32Array> {
  const [, Nq, H] = out.shape as [number, number, number, number];
  using flat = out.reshape([out.numel / 128, 128]);
  const parts: Float32Array[] = [];
  for (const { b, h, rows } of picks)
    for (const i of rows) {
      using row = flat.narrow((b * Nq + i) * H + h, 1);
      using onHost = await row.to('cpu');
      parts.push(await onHost.toFloat32());
    }
  const all = new Float32Array(parts.length * 128);
  parts.forEach((p, i) => all.set(p, i * 128));
  return all;
}

/** ||a - b|| / ||b|| over two whole GPU tensors, reduced on the GPU (f32) and summed here (f64). */
async function deviceRelErr(a: Tensor, b: Tensor): Promise<number> {
  const rows = a.numel / 128;
  const partial = async (x: Tensor): Promise<Float32Array> => {
    using squared = square(x);
    using perRow = squared.reshape([rows, 128]);
    using sums = sum(perRow, 1);
    return sums.toFloat32();
  };
  using a32 = cast(a, 'f32');
  using b32 = cast(b, 'f32');
  using difference = sub(a32, b32);
  const [num, den] = await Promise.all([partial(difference), partial(b32)]);
  let n = 0, d = 0;
  for (let i = 0; i < rows; i++) {
    n += num[i]!;
    d += den[i]!;
  }
  return Math.sqrt(n / d);
}

/** Query rows spread over [0, n): first, last, the tile edges, and seeded ones between. */
function spreadRows(n: number, count: number, seed: number): number[] {
  const rng = new Rng(seed);
  const rows = new Set<number>([0, 63, 64, 127, 128, n - 1].filter((r) => r < n));
  while (rows.size < count) rows.add(rng.int(0, n));
  return [...rows].sort((x, y) => x - y);
}

/** `heads`: the head compared with the CPU twin for each of the picks (batch items 0, 0, 1, 1). */
interface LargeSpec { name: string; B: number; H: number; Nq: number; Nk: number; kvLen: number[]; seed: number; heads: number[] }

describeHopper('attention: Hopper kernel (sm_90a) vs the CPU twin and the mma kernel', () => {
  for (const spec of SPECS) {
    it(`${spec.name}: every schedule and ring depth`, async () => {
      const { exact, padded } = makeInputs(spec);
      const reference = await cpuTwin(spec, exact);
      const tolerance = bf16Rule(reference);
      using q = Tensor.from(padded.q, [spec.B, spec.H, spec.Nq, 128], { device: 'cuda', dtype: 'bf16' });
      using k = Tensor.from(padded.k, [spec.B, spec.Hkv, spec.Nk, 128], { device: 'cuda', dtype: 'bf16' });
      using v = Tensor.from(padded.v, [spec.B, spec.Hkv, spec.Nk, 128], { device: 'cuda', dtype: 'bf16' });
      using kvLen = spec.kvLen ? Tensor.from(Int32Array.from(spec.kvLen), [spec.B], { device: 'cuda' }) : undefined;
      const options: AttentionOptions = kvLen ? { kvLen } : {};
      using viaMma = onMma(() => attention(q, k, v, options));
      const mma = await viaMma.toFloat32();
      let first: Float32Array | undefined;
      for (const variant of VARIANTS) {
        expect(onHopper(variant, () => attentionKernel(q, k, v, options))).toBe('hopper');
        using viaHopper = onHopper(variant, () => attention(q, k, v, options));
        const hopper = await viaHopper.toFloat32();
        expectWithinMma(hopper, mma, reference, tolerance, `${spec.name} [${label(variant)}]`);
        // Every schedule and ring depth performs the same operations in the same order.
        if (first) expectIdentical(hopper, first, `${spec.name}: ${label(variant)} vs ${label(VARIANTS[0]!)}`);
        first ??= hopper;
      }
    });
  }

  const determinism = fitEmulated({ N: 1000, kvLen: [1000, 611] }, { N: 400, kvLen: [400, 245] }, 'N 1,000 -> 400, kv_len [400, 245] to fit CI time');
  it(`is deterministic: two runs of the default variant are bit-identical (N=1,000, kv_len [1000, 611])${determinism.note}`, async () => {
    const { N, kvLen: lengths } = determinism.value;
    const spec: Spec = { name: 'determinism', B: 2, H: 4, Hkv: 4, Nq: N, Nk: N, kvLen: lengths, seed: 910 };
    const { exact } = makeInputs(spec);
    using q = Tensor.from(exact.q, [2, 4, N, 128], { device: 'cuda', dtype: 'bf16' });
    using k = Tensor.from(exact.k, [2, 4, N, 128], { device: 'cuda', dtype: 'bf16' });
    using v = Tensor.from(exact.v, [2, 4, N, 128], { device: 'cuda', dtype: 'bf16' });
    using kvLen = Tensor.from(Int32Array.from(spec.kvLen!), [2], { device: 'cuda' });
    using first = onHopper(DEFAULT_VARIANT, () => attention(q, k, v, { kvLen }));
    using second = onHopper(DEFAULT_VARIANT, () => attention(q, k, v, { kvLen }));
    expectIdentical(await second.toFloat32(), await first.toFloat32(), 'second run');
  });

  // DiT self-attention at 544x992x204 with different prefix lengths per batch item (item 0 full,
  // item 1 cut inside a tile), and the DiT's cross-attention to 397 caption tokens.
  // On the emulated device: both batch items (their different kv_len, the second cut inside a tile)
  // and two heads each, many key tiles.
  const fitLarge = (spec: LargeSpec, emulated: Partial<LargeSpec>, change: string): LargeSpec => {
    const fitted = fitEmulated(spec, { ...spec, ...emulated }, `${change} to fit CI time`);
    return { ...fitted.value, name: spec.name + fitted.note };
  };
  const largeSpecs: LargeSpec[] = [
    fitLarge({ name: 'DiT self-attention B=2, 48 heads x 128, N=75,888, kv_len [75888, 50001]', B: 2, H: 48, Nq: 75_888, Nk: 75_888, kvLen: [75_888, 50_001], seed: 920, heads: [0, 29, 17, 47] },
      { H: 2, heads: [0, 1, 0, 1], Nq: 1029, Nk: 1029, kvLen: [1029, 679] }, 'N 75,888 -> 1,029, kv_len [1029, 679], 48 -> 2 heads'),
    fitLarge({ name: 'DiT cross-attention 75,888 x 397 keys, kv_len [397, 250]', B: 2, H: 48, Nq: 75_888, Nk: 397, kvLen: [397, 250], seed: 930, heads: [0, 29, 17, 47] },
      { H: 2, heads: [0, 1, 0, 1], Nq: 259 }, '75,888 -> 259 queries, 48 -> 2 heads'),
  ];
  for (const spec of largeSpecs) {
    it(`${spec.name} (real size: sampled rows vs the CPU twin, whole output vs the mma kernel)`, async () => {
      const { B, H, Nq, Nk } = spec;
      using q = gpuNormal([B, H, Nq, 128], spec.seed, 2.5);
      using k = gpuNormal([B, H, Nk, 128], spec.seed + 1, 1);
      using v = gpuNormal([B, H, Nk, 128], spec.seed + 2, 1);
      using kvLen = Tensor.from(Int32Array.from(spec.kvLen), [B], { device: 'cuda' });
      using viaMma = onMma(() => attention(q, k, v, { kvLen }));
      using viaHopper = onHopper(DEFAULT_VARIANT, () => attention(q, k, v, { kvLen }));
      // Both batch items, heads at both ends and between, rows at tile edges and the last row.
      const picks = [0, 0, 1, 1].map((b, i) => ({ b, h: spec.heads[i]!, rows: spreadRows(Nq, 16, 940 + i) }));
      const expected: Float32Array[] = [];
      for (const { b, h, rows } of picks) {
        const qs = new Float32Array(rows.length * 128);
        for (const [r, row] of rows.entries()) qs.set(await headRows(q, b, h, row, 1), r * 128);
        using qc = Tensor.from(qs, [1, 1, rows.length, 128], { device: 'cpu' });
        using kc = Tensor.from(await headRows(k, b, h, 0, Nk), [1, 1, Nk, 128], { device: 'cpu' });
        using vc = Tensor.from(await headRows(v, b, h, 0, Nk), [1, 1, Nk, 128], { device: 'cpu' });
        using kvc = Tensor.from(Int32Array.from([spec.kvLen[b]!]), [1], { device: 'cpu' });
        using out = attention(qc, kc, vc, { kvLen: kvc });
        expected.push(await out.toFloat32());
      }
      const reference = new Float32Array(expected.reduce((n, e) => n + e.length, 0));
      let at = 0;
      for (const e of expected) {
        reference.set(e, at);
        at += e.length;
      }
      // The sampled bf16 outputs against the CPU twin: 8e-3 as for the mma kernel's own large cases.
      expectWithinMma(await outputRows(viaHopper, picks), await outputRows(viaMma, picks), reference, 8e-3, spec.name);
      const whole = await deviceRelErr(viaHopper, viaMma);
      expect(Number.isFinite(whole), `${spec.name}: non-finite values in the whole output`).toBe(true);
      expect(whole, `${spec.name}: whole output, Hopper vs mma rel ${whole.toExponential(3)}`).toBeLessThanOrEqual(8e-3);
    }, 600_000);
  }

  it('refuses calls it cannot take (ERR_UNSUPPORTED with the reason) and unknown variants (ERR_ARGUMENT)', () => {
    const rng = new Rng(950);
    const data = Float32Array.from(randn(rng, 2 * 2 * 40 * 128), roundBf16);
    using x = Tensor.from(data, [2, 2, 40, 128], { device: 'cuda', dtype: 'bf16' });
    using x32 = Tensor.from(data, [2, 2, 40, 128], { device: 'cuda' });
    using x64 = Tensor.from(data, [2, 4, 40, 64], { device: 'cuda', dtype: 'bf16' });
    const hopper = <T>(fn: () => T): T => onHopper(DEFAULT_VARIANT, fn);
    expectErrorCode(() => hopper(() => attention(x32, x32, x32)), 'ERR_UNSUPPORTED', /Hopper kernel does not support this call \(dtype f32/);
    expectErrorCode(() => hopper(() => attention(x64, x64, x64)), 'ERR_UNSUPPORTED', /head dim 64/);
    expectErrorCode(() => hopper(() => attention(x, x, x, { causal: true })), 'ERR_UNSUPPORTED', /causal/);
    expectErrorCode(() => hopper(() => attention(x, x, x, { scale: -0.1 })), 'ERR_UNSUPPORTED', /scale/);
    // A view two bytes into its storage: TMA needs 16-byte aligned global addresses.
    const shifted = new Float32Array(data.length + 1);
    shifted.set(data, 1);
    using storage = Tensor.from(shifted, [shifted.length], { device: 'cuda', dtype: 'bf16' });
    using misaligned = storage.viewAs([2, 2, 40, 128], 'bf16', 2);
    expectErrorCode(() => hopper(() => attention(misaligned, x, x)), 'ERR_UNSUPPORTED', /16-byte aligned/);
    // A variant that does not exist: refused where the policy is set, from the environment or by argument.
    expectErrorCode(() => kernelPolicyFromEnvironment({ STEPVIDEO_ATTENTION: 'hopper', STEPVIDEO_ATTENTION_HOPPER_SCHEDULE: 'fastest' }), 'ERR_ARGUMENT', /STEPVIDEO_ATTENTION_HOPPER_SCHEDULE/);
    expectErrorCode(() => kernelPolicyFromEnvironment({ STEPVIDEO_ATTENTION: 'hopper', STEPVIDEO_ATTENTION_HOPPER_STAGES: '4' }), 'ERR_ARGUMENT', /STEPVIDEO_ATTENTION_HOPPER_STAGES/);
    expectErrorCode(() => withPolicy({ hopperSchedule: 'fastest' as never }, () => attention(x, x, x)), 'ERR_ARGUMENT', /hopperSchedule/);
    expectErrorCode(() => withPolicy({ hopperStages: 4 as never }, () => attention(x, x, x)), 'ERR_ARGUMENT', /hopperStages/);
  });

  it('automatic dispatch keeps the mma kernel while the Hopper kernel is opt-in', () => {
    // The policy's hopperInAuto (lib/kernel-policy.ts) is false until this suite and the benchmark have
    // run on the H200; the session that flips its default changes the expectation below to 'hopper'.
    using q = Tensor.zeros([2, 48, 300, 128], 'bf16', 'cuda');
    using kvLen = Tensor.from(Int32Array.from([300, 200]), [2], { device: 'cuda' });
    expect(withPolicy({ attention: 'auto' }, () => attentionKernel(q, q, q, { kvLen }))).toBe('mma');
    expect(withPolicy({ attention: 'auto', hopperInAuto: true }, () => attentionKernel(q, q, q, { kvLen }))).toBe('hopper');
    expect(onHopper(DEFAULT_VARIANT, () => attentionKernel(q, q, q, { kvLen }))).toBe('hopper');
  });

  it('returns device memory to its baseline', async () => {
    const device = getDevice('cuda');
    await device.synchronize();
    const baseline = device.memory().bytesInUse;
    const rng = new Rng(960);
    for (const variant of [DEFAULT_VARIANT, { schedule: 'serial', stages: 3 } as Variant]) {
      using x = Tensor.from(randn(rng, 2 * 3 * 300 * 128), [2, 3, 300, 128], { device: 'cuda' });
      using xb = cast(x, 'bf16');
      using kvLen = Tensor.from(Int32Array.from([300, 77]), [2], { device: 'cuda' });
      using out = onHopper(variant, () => attention(xb, xb, xb, { kvLen }));
      expect(out.shape).toEqual([2, 300, 3, 128]);
      await out.toFloat32();
    }
    await device.synchronize();
    expect(device.memory().bytesInUse).toBe(baseline);
  });
});
