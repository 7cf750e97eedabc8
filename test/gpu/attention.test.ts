// The tensor-core attention path (cuda/attention_mma.cuh) against the generic path on the same
// inputs, bf16 and f16: every attention case (also against its float64 reference), mid-size
// cases with many key tiles, masked keys holding NaN, automatic dispatch and its fallbacks, and
// memory returning to its baseline. The device's kernel policy picks the path (generic | mma).
// attentionBackward over several tiles with NaN past kv_len (its cases are in test/cases/attention-backward.ts).
import { expect, it } from 'vitest';

import { f16BitsToF32, f32ToF16Bits, roundBf16 } from '../../lib/dtype.js';
import { getDevice } from '../../lib/device.js';
import { StepVideoError } from '../../lib/errors.js';
import type { KernelPolicy } from '../../lib/kernel-policy.js';
import { attention, attentionBackward, type AttentionOptions } from '../../lib/kernels/attention.js';
import { cast } from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { attentionCases, attentionRef } from '../cases/attention.js';
import { expectRelErr, relErr } from '../helpers/compare.js';
import { describeGpu, fitEmulated, withPolicy } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';

type Half = 'bf16' | 'f16';
type Path = 'generic' | 'mma';
const TENSOR_CORE_HEAD_DIMS = [64, 128, 256, 512];

const roundF16 = (x: number): number => f16BitsToF32(f32ToF16Bits(x));
const rounder = (dtype: Half) => (dtype === 'bf16' ? roundBf16 : roundF16);

/** Runs fn with the device's attention kernel chosen (the op reads the policy when it is enqueued). */
function onPath<T>(path: Path | string, fn: () => T): T {
  return withPolicy({ attention: path as KernelPolicy['attention'] }, fn);
}

/**
 * flash-attention's rule for half-precision kernels: at most twice the error of merely rounding
 * the exact result to the dtype, plus a floor for accumulation order (and P rounded before P·V).
 */
function halfTolerance(reference: ArrayLike<number>, dtype: Half): number {
  const round = rounder(dtype);
  return 2 * relErr(Array.from(reference, round), reference) + 1e-3;
}

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

/** Bit-for-bit equality (both kernels are deterministic), naming the first differing element. */
function expectIdentical(got: Float32Array, expected: Float32Array, what: string): void {
  expect(got.length, what).toBe(expected.length);
  const at = got.findIndex((x, i) => !Object.is(x, expected[i]));
  expect(at, `${what}: first difference at element ${at} (${got[at]} vs ${expected[at]})`).toBe(-1);
}

/** Every path's output for one input set; the automatic one must be the tensor-core one when it applies. */
async function runPaths(run: () => Tensor, tensorCore: boolean): Promise<{ generic: Float32Array; mma?: Float32Array }> {
  using viaGeneric = onPath('generic', run);
  const generic = await viaGeneric.toFloat32();
  if (!tensorCore) {
    expectErrorCode(() => onPath('mma', run), 'ERR_UNSUPPORTED', /tensor-core kernel does not support/);
    using viaAuto = run();
    expectIdentical(await viaAuto.toFloat32(), generic, 'automatic dispatch falls back to the generic path');
    return { generic };
  }
  using viaMma = onPath('mma', run);
  using viaAuto = run();
  const mma = await viaMma.toFloat32();
  expectIdentical(await viaAuto.toFloat32(), mma, 'automatic dispatch takes the tensor-core path');
  return { generic, mma };
}

describeGpu('attention: tensor-core path vs generic path', () => {
  for (const testCase of attentionCases()) {
    const headDim = testCase.inputs[0]!.shape[3]!;
    const tensorCore = TENSOR_CORE_HEAD_DIMS.includes(headDim);
    for (const dtype of ['bf16', 'f16'] as const) {
      it(`${testCase.name} (${dtype}${tensorCore ? '' : ', generic only'})`, async () => {
        const round = rounder(dtype);
        const rounded = testCase.inputs.map((input) => (input.dtype === undefined ? Float32Array.from(input.data as Float32Array, round) : input.data));
        const onGpu = testCase.inputs.map((input, i) => Tensor.from(rounded[i]!, input.shape, { device: 'cuda', dtype: input.dtype ?? dtype }));
        try {
          const { generic, mma } = await runPaths(() => testCase.run(onGpu), tensorCore);
          const ref = testCase.reference(rounded);
          const tolerance = halfTolerance(ref, dtype);
          expectRelErr(generic, ref, tolerance, `${testCase.name} ${dtype} generic vs reference`);
          if (mma) {
            expectRelErr(mma, ref, tolerance, `${testCase.name} ${dtype} tensor-core vs reference`);
            expectRelErr(mma, generic, 2 * tolerance, `${testCase.name} ${dtype} tensor-core vs generic`);
          }
        } finally {
          for (const t of onGpu) t.dispose();
        }
      });
    }
  }

  // Many key tiles (the cp.async ring wraps many times), partial last tiles, masks per batch item.
  interface MidSpec {
    name: string; B: number; H: number; Hkv: number; Nq: number; Nk: number; D: number;
    kvLen?: number[]; causal?: boolean; alibi?: boolean; seed: number;
  }
  // On the emulated device (test/helpers/gpu.ts) the generic kernels run about 18 M q·k products
  // per second: each case keeps its structure (several key tiles with a partial last one, masks per
  // batch item, GQA, causal alignment) at the largest size that keeps a test within a few seconds.
  const fit = (spec: MidSpec, emulated: Partial<MidSpec>, change: string): MidSpec => {
    const fitted = fitEmulated(spec, { ...spec, ...emulated }, `${change} to fit CI time`);
    return { ...fitted.value, name: spec.name + fitted.note };
  };
  const midCases: MidSpec[] = [
    fit({ name: 'DiT-like self-attention B=2, 4 heads x 128, N=1581', B: 2, H: 4, Hkv: 4, Nq: 1581, Nk: 1581, D: 128, seed: 500 },
      { H: 2, Hkv: 2, Nq: 257, Nk: 257 }, 'N 1581 -> 257, 4 -> 2 heads'),
    fit({ name: 'cross-attention 3001 x 397 keys, kv_len [397, 250]', B: 2, H: 3, Hkv: 3, Nq: 3001, Nk: 397, D: 128, kvLen: [397, 250], seed: 501 },
      { H: 2, Hkv: 2, Nq: 131 }, '3001 -> 131 queries, 3 -> 2 heads'),
    fit({ name: 'causal + kv_len [1581, 777], 1000 queries over 1581 keys, GQA 4/2', B: 2, H: 4, Hkv: 2, Nq: 1000, Nk: 1581, D: 128, causal: true, kvLen: [1581, 777], seed: 502 },
      { Nq: 130, Nk: 259, kvLen: [259, 127] }, '1000 queries over 1581 keys -> 130 over 259, kv_len [259, 127]'),
    fit({ name: 'Step-LLM B=2, 8 heads / 2 groups x 128, N=320, causal ALiBi-sqrt', B: 2, H: 8, Hkv: 2, Nq: 320, Nk: 320, D: 128, causal: true, alibi: true, seed: 503 },
      { H: 2, Hkv: 1 }, '8 heads / 2 groups -> 2 / 1'),
    { name: 'Hunyuan-CLIP-like 16 heads x 64, N=77, kv_len [77, 12]', B: 2, H: 16, Hkv: 16, Nq: 77, Nk: 77, D: 64, kvLen: [77, 12], seed: 504 },
    fit({ name: 'head dim 64, N=777, kv_len [777, 500]', B: 2, H: 2, Hkv: 2, Nq: 777, Nk: 777, D: 64, kvLen: [777, 500], seed: 505 },
      { Nq: 333, Nk: 333, kvLen: [333, 214] }, 'N 777 -> 333, kv_len [333, 214]'),
    fit({ name: 'head dim 256, causal ALiBi-sqrt, N=600', B: 1, H: 3, Hkv: 3, Nq: 600, Nk: 600, D: 256, causal: true, alibi: true, seed: 506 },
      { Nq: 261, Nk: 261 }, 'N 600 -> 261'),
    fit({ name: 'VAE-like causal 1 head x 512, N=2049', B: 1, H: 1, Hkv: 1, Nq: 2049, Nk: 2049, D: 512, causal: true, seed: 507 },
      { Nq: 321, Nk: 321 }, 'N 2049 -> 321'),
  ];
  for (const spec of midCases) {
    for (const dtype of ['bf16', 'f16'] as const) {
      it(`${spec.name} (${dtype}, against the f32 generic kernel)`, async () => {
        const rng = new Rng(spec.seed);
        const round = rounder(dtype);
        const q = Float32Array.from(randn(rng, spec.B * spec.H * spec.Nq * spec.D, 1.5), round);
        const k = Float32Array.from(randn(rng, spec.B * spec.Hkv * spec.Nk * spec.D), round);
        const v = Float32Array.from(randn(rng, spec.B * spec.Hkv * spec.Nk * spec.D), round);
        using kvLen = spec.kvLen ? Tensor.from(Int32Array.from(spec.kvLen), [spec.B], { device: 'cuda' }) : undefined;
        const options: AttentionOptions = { causal: spec.causal ?? false, alibiSqrt: spec.alibi ?? false, ...(kvLen ? { kvLen } : {}) };
        const upload = (data: Float32Array, heads: number, n: number, as: 'f32' | Half) =>
          Tensor.from(data, [spec.B, heads, n, spec.D], { device: 'cuda', dtype: as });
        // The f32 generic kernel on the same (rounded) values is the reference: exact softmax, f32 sums.
        using q32 = upload(q, spec.H, spec.Nq, 'f32');
        using k32 = upload(k, spec.Hkv, spec.Nk, 'f32');
        using v32 = upload(v, spec.Hkv, spec.Nk, 'f32');
        using exact = attention(q32, k32, v32, options);
        const ref = await exact.toFloat32();
        using qh = upload(q, spec.H, spec.Nq, dtype);
        using kh = upload(k, spec.Hkv, spec.Nk, dtype);
        using vh = upload(v, spec.Hkv, spec.Nk, dtype);
        const { generic, mma } = await runPaths(() => attention(qh, kh, vh, options), true);
        const tolerance = halfTolerance(ref, dtype);
        expectRelErr(generic, ref, tolerance, `${spec.name} ${dtype} generic`);
        expectRelErr(mma!, ref, tolerance, `${spec.name} ${dtype} tensor-core`);
      });
    }
  }

  it('keys past kv_len are never read: NaN there leaves the output exact (both paths)', async () => {
    const B = 2, H = 2, N = 129, D = 128, kvLens = [64, 100];
    const rng = new Rng(600);
    const q = Float32Array.from(randn(rng, B * H * N * D), roundBf16);
    const k = Float32Array.from(randn(rng, B * H * N * D), roundBf16);
    const v = Float32Array.from(randn(rng, B * H * N * D), roundBf16);
    const ref = attentionRef(q, k, v, B, H, H, N, N, D, { kvLen: kvLens });
    const kNaN = k.slice(), vNaN = v.slice();
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++)
        for (let j = kvLens[b]!; j < N; j++) {
          kNaN.fill(NaN, ((b * H + h) * N + j) * D, ((b * H + h) * N + j + 1) * D);
          vNaN.fill(NaN, ((b * H + h) * N + j) * D, ((b * H + h) * N + j + 1) * D);
        }
    using qg = Tensor.from(q, [B, H, N, D], { device: 'cuda', dtype: 'bf16' });
    using kg = Tensor.from(kNaN, [B, H, N, D], { device: 'cuda', dtype: 'bf16' });
    using vg = Tensor.from(vNaN, [B, H, N, D], { device: 'cuda', dtype: 'bf16' });
    using kvLen = Tensor.from(Int32Array.from(kvLens), [B], { device: 'cuda' });
    const { generic, mma } = await runPaths(() => attention(qg, kg, vg, { kvLen }), true);
    const tolerance = halfTolerance(ref, 'bf16');
    expectRelErr(generic, ref, tolerance, 'generic with NaN padding');
    expectRelErr(mma!, ref, tolerance, 'tensor-core with NaN padding');
  });

  it('falls back to the generic path for f32, head dim 16 and misaligned views; rejects unknown modes', async () => {
    const B = 1, H = 2, N = 37, D = 128;
    const rng = new Rng(601);
    const data = Float32Array.from(randn(rng, B * H * N * D), roundBf16);
    const ref = attentionRef(data, data, data, B, H, H, N, N, D);
    // f32: no tensor-core kernel; automatic dispatch is the generic one.
    using x32 = Tensor.from(data, [B, H, N, D], { device: 'cuda' });
    const f32 = await runPaths(() => attention(x32, x32, x32), false);
    expectRelErr(f32.generic, ref, 1e-5, 'f32');
    // A view two bytes into its storage: cp.async needs 16-byte alignment, so the generic path runs.
    const padded = new Float32Array(data.length + 1);
    padded.set(data, 1);
    using storage = Tensor.from(padded, [padded.length], { device: 'cuda', dtype: 'bf16' });
    using misaligned = storage.viewAs([B, H, N, D], 'bf16', 2);
    using aligned = Tensor.from(data, [B, H, N, D], { device: 'cuda', dtype: 'bf16' });
    expectErrorCode(() => onPath('mma', () => attention(misaligned, aligned, aligned)), 'ERR_UNSUPPORTED', /16-byte aligned/);
    using fallback = attention(misaligned, aligned, aligned);
    using viaGeneric = onPath('generic', () => attention(aligned, aligned, aligned));
    expectIdentical(await fallback.toFloat32(), await viaGeneric.toFloat32(), 'misaligned view falls back to the generic path');
    expectErrorCode(() => onPath('fastest', () => attention(aligned, aligned, aligned)), 'ERR_ARGUMENT', /attention must be one of auto, generic, mma, hopper, got 'fastest'/);
  });

  it('attentionBackward over several tiles: NaN in keys past kv_len is never read, the scratch is freed, head dim > 128 is refused', async () => {
    // 200 queries over 150 keys, kv_len [130, 1]: the dK/dV kernel walks 7 query steps of 32 over 3
    // key tiles of 64 (the last partly masked), the dQ kernel 5 key steps of 32 for each of 4 query
    // tiles; bf16 against the CPU twin on the same (rounded) data, masked rows of k and v NaN on the GPU.
    const B = 2, H = 2, Nq = 200, Nk = 150, D = 128, kvLens = [130, 1];
    const rng = new Rng(610);
    const [q, k, v, dOut] = [B * H * Nq * D, B * H * Nk * D, B * H * Nk * D, B * Nq * H * D].map((n) => Float32Array.from(randn(rng, n), roundBf16));
    const out = Float32Array.from(attentionRef(q!, k!, v!, B, H, H, Nq, Nk, D, { kvLen: kvLens }), roundBf16);
    const kNaN = k!.slice(), vNaN = v!.slice();
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++) {
        kNaN.fill(NaN, ((b * H + h) * Nk + kvLens[b]!) * D, (b * H + h + 1) * Nk * D);
        vNaN.fill(NaN, ((b * H + h) * Nk + kvLens[b]!) * D, (b * H + h + 1) * Nk * D);
      }
    const device = getDevice('cuda');
    await device.synchronize();
    const baseline = device.memory().bytesInUse;
    const run = async (where: 'cpu' | 'cuda', kData: Float32Array, vData: Float32Array) => {
      const dtype = where === 'cuda' ? 'bf16' : 'f32';
      using qt = Tensor.from(q!, [B, H, Nq, D], { device: where, dtype });
      using kt = Tensor.from(kData, [B, H, Nk, D], { device: where, dtype });
      using vt = Tensor.from(vData, [B, H, Nk, D], { device: where, dtype });
      using ot = Tensor.from(out, [B, Nq, H, D], { device: where, dtype });
      using dot = Tensor.from(dOut!, [B, Nq, H, D], { device: where, dtype });
      using kvLen = Tensor.from(Int32Array.from(kvLens), [B], { device: where });
      const grads = attentionBackward(qt, kt, vt, ot, dot, { kvLen });
      const values = await Promise.all([grads.dq, grads.dk, grads.dv].map((t) => t.toFloat32()));
      for (const t of [grads.dq, grads.dk, grads.dv]) t.dispose();
      return values;
    };
    const twin = await run('cpu', k!, v!);
    const gpu = await run('cuda', kNaN, vNaN);
    for (const [i, name] of ['dq', 'dk', 'dv'].entries()) expectRelErr(gpu[i]!, twin[i]!, halfTolerance(twin[i]!, 'bf16'), `${name} vs the CPU twin`);
    await device.synchronize();
    expect(device.memory().bytesInUse).toBe(baseline);
    using wide = Tensor.zeros([1, 1, 4, 160], 'bf16', 'cuda');
    using wideOut = Tensor.zeros([1, 4, 1, 160], 'bf16', 'cuda');
    expectErrorCode(() => attentionBackward(wide, wide, wide, wideOut, wideOut), 'ERR_UNSUPPORTED', /head dims 1 to 128, got 160/);
  });

  it('returns device memory to its baseline', async () => {
    const device = getDevice('cuda');
    await device.synchronize();
    const baseline = device.memory().bytesInUse;
    const rng = new Rng(602);
    for (const [D, causal] of [[128, false], [512, true], [64, true]] as const) {
      using x = Tensor.from(randn(rng, 2 * 3 * 200 * D), [2, 3, 200, D], { device: 'cuda' });
      using xb = cast(x, 'bf16');
      using kvLen = Tensor.from(Int32Array.from([200, 50]), [2], { device: 'cuda' });
      for (const path of ['mma', 'generic'] as const) {
        using out = onPath(path, () => attention(xb, xb, xb, { causal, kvLen }));
        expect(out.shape).toEqual([2, 200, 3, D]);
      }
    }
    await device.synchronize();
    expect(device.memory().bytesInUse).toBe(baseline);
  });
});
