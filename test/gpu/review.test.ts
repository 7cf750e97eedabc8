// From the review of the CUDA kernels before their first GPU run: two hazards no other suite
// reaches, checked against the CPU twin.
//  1. Views at odd element offsets. Kernels with 16-byte vector access (LayerNorm, GroupNorm, the
//     gated residual, the VAE residual, the tensor-core conv, cuBLASLt's aligned algorithms) must
//     notice the misalignment and take a scalar path; the other suites only ever pass fresh tensors.
//  2. Tensors past 2^31 elements. Every offset must be computed in 64 bits; the largest real tensors
//     (attention at N = 75,888: 932 M elements; VAE activations: 1.2-1.4 G) stay below 2^31, so here
//     each family runs once on a bf16 tensor just past it and its last rows are checked (where a
//     32-bit offset would have wrapped). Inputs are made on the device; only the tails come back.
// Device memory must return to its baseline after every test.
import { afterEach, beforeEach, expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import { roundBf16, f16BitsToF32, f32ToF16Bits } from '../../lib/dtype.js';
import { attention } from '../../lib/kernels/attention.js';
import { conv3d, conv3dKernelName, repackConvWeight } from '../../lib/kernels/conv.js';
import { embedding } from '../../lib/kernels/embedding.js';
import { groupNorm, layerNorm, rmsNorm } from '../../lib/kernels/norm.js';
import { gatedResidual } from '../../lib/kernels/residual.js';
import { randomNormal } from '../../lib/kernels/random.js';
import { swiglu } from '../../lib/kernels/swiglu.js';
import { upsampleResidual } from '../../lib/kernels/vae.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { bf16Tolerance, expectRelErr } from '../helpers/compare.js';
import { describeGpu, itUnlessEmulated, withPolicy } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';

type Float = 'f32' | 'bf16';
const DEVICE = 'cuda';

const bytesInUse = (): number => getDevice(DEVICE).memory().bytesInUse;

/** The values as the given dtype stores them (what the CPU twin must be fed). */
const stored = (data: Float32Array, dtype: Float): Float32Array => (dtype === 'bf16' ? Float32Array.from(data, roundBf16) : data);

/** The tolerance of a GPU result in `dtype` against the CPU twin on the same stored inputs. */
const toleranceFor = (expected: Float32Array, dtype: Float): number => (dtype === 'bf16' ? bf16Tolerance(expected) : 1e-5);

// ---- 1. views at odd element offsets ----

/** `data` on the device as a view that starts one element into its storage (2 or 4 bytes: never 16-byte aligned). */
function offsetView(data: Float32Array, shape: number[], dtype: Float): Tensor {
  const padded = new Float32Array(data.length + 1);
  padded.set(data, 1);
  using base = Tensor.from(padded, [padded.length], { device: DEVICE, dtype });
  using view = base.narrow(1, data.length);
  return view.reshape(...shape);  // the storage lives while any view does
}

const onCpu = (data: Float32Array, shape: number[], dtype: Float): Tensor => Tensor.from(stored(data, dtype), shape, { device: 'cpu' });

interface OffsetCase {
  name: string;
  /** Input values and shapes; every input is passed as an offset view on the device. */
  inputs: Array<{ shape: number[]; data: Float32Array }>;
  run(inputs: Tensor[]): Tensor;
  /** Optional check of the kernel chosen for the offset views. */
  kernel?(inputs: Tensor[]): void;
}

function offsetCases(): OffsetCase[] {
  const rng = new Rng(4242);
  const input = (...shape: number[]) => ({ shape, data: randn(rng, shape.reduce((a, b) => a * b, 1), 1.2, 0.1) });
  const gain = (n: number) => ({ shape: [n], data: randn(rng, n, 0.2, 1) });
  const convWeight = (cout: number, cin: number) => ({ shape: [cout, cin, 3, 3, 3], data: randn(rng, cout * cin * 27, 1 / Math.sqrt(cin * 27)) });
  return [
    { name: 'layerNorm D 64 + affine', inputs: [input(5, 64), gain(64), gain(64)], run: ([x, w, b]) => layerNorm(x!, { weight: w!, bias: b!, eps: 1e-5 }) },
    { name: 'layerNorm D 64 + AdaLN modulation', inputs: [input(6, 64), input(2, 64), input(2, 64)], run: ([x, s, h]) => layerNorm(x!, { scale: s!, shift: h!, eps: 1e-6 }) },
    { name: 'rmsNorm D 64', inputs: [input(7, 64), gain(64)], run: ([x, w]) => rmsNorm(x!, w, 1e-6) },
    { name: 'gatedResidual D 64, gate per group', inputs: [input(6, 64), input(6, 64), input(2, 64)], run: ([x, y, g]) => gatedResidual(x!, y!, g) },
    { name: 'groupNorm+SiLU 64 channels', inputs: [input(2, 3, 5, 64), gain(64), gain(64)], run: ([x, w, b]) => groupNorm(x!, w!, b!, { groups: 32, silu: true }) },
    { name: 'upsampleResidual x2, 16 channels', inputs: [input(2, 4, 6, 16), input(1, 2, 3, 16)], run: ([h, x]) => upsampleResidual(h!, x!, { time: 2, space: 2 }) },
    {
      name: 'conv3d 64 -> 96 (tensor-core kernels need 16-byte aligned x and weight)',
      inputs: [input(1, 2, 3, 5, 64), convWeight(96, 64), gain(96)],
      run: ([x, w, b]) => {
        using packed = repackConvWeight(w!);
        return conv3d(x!, packed, { bias: b!, padding: { front: 2, top: 1, bottom: 1, left: 1, right: 1 } });
      },
      kernel: ([x, w, b]) => {
        using packed = repackConvWeight(w!);  // a fresh (aligned) weight: x alone is offset
        const name = conv3dKernelName(x!, packed, { bias: b!, padding: { front: 2, top: 1, bottom: 1, left: 1, right: 1 } });
        expect(name, 'an offset x must not reach the tensor-core conv kernels').toBe('simt');
      },
    },
    { name: 'matmul transB + bias (cuBLASLt at 2- or 4-byte alignment)', inputs: [input(37, 64), input(48, 64), gain(48)], run: ([a, w, b]) => ops.matmul(a!, w!, { transB: true, bias: b! }) },
    {
      name: 'matmul transB + bias, fallback kernel',
      inputs: [input(37, 64), input(48, 64), gain(48)],
      run: ([a, w, b]) => withPolicy({ gemm: 'fallback' }, () => ops.matmul(a!, w!, { transB: true, bias: b! })),
    },
    { name: 'softmax 3x100', inputs: [input(3, 100)], run: ([x]) => ops.softmax(x!) },
    { name: 'swiglu 3x(2x40)', inputs: [input(3, 80)], run: ([x]) => swiglu(x!) },
    { name: 'cast to f16 and back', inputs: [input(9, 33)], run: ([x]) => {
      using half = ops.cast(x!, 'f16');
      return ops.cast(half, x!.dtype);
    } },
  ];
}

// ---- 2. past 2^31 elements ----

const TWO_TO_31 = 2 ** 31;
const NOISE = TWO_TO_31 + 4096;                                    // elements
const ROWS = 2 ** 21 + 3, WIDTH = 1024;                             // 2^31 + 3072
const FRAMES = 65_600, FRAME = [8, 8, 512] as const;                // 2^31 + 2,097,152
const CONV = { T: 2, H: 2048, W: 4100, cin: 64, cout: 128 };        // out 2^31 + 2,097,152
const ATT = { H: 64, Hkv: 8, Nq: 262_145, Nk: 64, D: 128 };         // q and out 2^31 + 8192
const GEMM = { batch: 64, m: 262_145, k: 64, n: 128 };              // out 2^31 + 8192
const EMB = { ids: 2 ** 24 + 64, vocab: 1000, dim: 128 };           // out 2^31 + 8192
const SWIGLU = { rows: 2 ** 20 + 1, half: 1024 };                   // x 2^31 + 2048

// The emulated device (test/helpers/gpu.ts) runs about 5 M elements/s and holds 8 GiB: one pass over
// 2^31 elements takes minutes, and several of these tensors do not fit. No smaller tensor has a
// 32-bit offset to wrap, so these checks are a real GPU's alone.
const PAST_2_31_ON_EMULATOR = 'a GPU-only size: each pass over 2^31 elements takes minutes there, and the tensors need up to 12 GiB of its 8';

function expectPast2To31(t: Tensor): void {
  expect(t.numel, `${t.toString()} should hold more than 2^31 elements`).toBeGreaterThan(TWO_TO_31);
}

/** The last `rows` rows (first dimension) of t, as f32 on the host. */
async function tail(t: Tensor, rows: number): Promise<Float32Array> {
  using view = t.narrow(t.shape[0]! - rows, rows);
  return await view.toFloat32();  // await: the view is disposed only once the read is done
}

async function cpuResult(t: Tensor): Promise<Float32Array> {
  try {
    return await t.toFloat32();
  } finally {
    t.dispose();
  }
}

describeGpu('CUDA kernels on offset views and past 2^31 elements (review)', () => {
  let baseline = 0;
  beforeEach(async () => {
    await getDevice(DEVICE).synchronize();
    baseline = bytesInUse();
  });
  afterEach(async () => {
    await getDevice(DEVICE).synchronize();
    expect(bytesInUse(), 'device memory back at its baseline').toBe(baseline);
  });

  for (const testCase of offsetCases()) {
    it(`offset views: ${testCase.name} (f32 and bf16) equals the CPU twin`, async () => {
      for (const dtype of ['f32', 'bf16'] as const) {
        const views = testCase.inputs.map((i) => offsetView(i.data, i.shape, dtype));
        const twins = testCase.inputs.map((i) => onCpu(i.data, i.shape, dtype));
        try {
          testCase.kernel?.(views);
          using out = testCase.run(views);
          expect(out.dtype).toBe(dtype);
          const expected = await cpuResult(testCase.run(twins));
          expectRelErr(await out.toFloat32(), expected, toleranceFor(expected, dtype), `${testCase.name} ${dtype}`);
        } finally {
          for (const t of [...views, ...twins]) t.dispose();
        }
      }
    });
  }

  itUnlessEmulated('past 2^31: randomNormal (bit-exact tail), cast to f16 and SiLU over 2^31 + 4096 elements', PAST_2_31_ON_EMULATOR, async () => {
    using x = randomNormal([NOISE], { seed: 31, dtype: 'bf16', device: DEVICE });
    expectPast2To31(x);
    const n = 8192;
    const got = await tail(x, n);
    using reference = randomNormal([n], { seed: 31, offset: NOISE - n, device: 'cpu' });
    const expected = Float32Array.from(await reference.toFloat32(), roundBf16);
    expect(Array.from(got), 'the last noise values equal the CPU stream rounded to bf16').toEqual(Array.from(expected));

    {
      using half = ops.cast(x, 'f16');
      expect(Array.from(await tail(half, n))).toEqual(Array.from(got, (v) => f16BitsToF32(f32ToF16Bits(v))));
    }
    using y = ops.silu(x);
    using twin = Tensor.from(got, [n], { device: 'cpu' });
    const silu = await cpuResult(ops.silu(twin));
    expectRelErr(await tail(y, n), silu, bf16Tolerance(silu), 'silu tail');
  });

  itUnlessEmulated('past 2^31: broadcast add, softmax, sum, layerNorm, rmsNorm and gatedResidual over [2^21 + 3, 1024]', PAST_2_31_ON_EMULATOR, async () => {
    using x = randomNormal([ROWS, WIDTH], { seed: 32, dtype: 'bf16', device: DEVICE });
    using y = randomNormal([ROWS, WIDTH], { seed: 33, dtype: 'bf16', device: DEVICE });
    expectPast2To31(x);
    const rng = new Rng(34);
    const small = (n: number, mean = 0) => Float32Array.from(randn(rng, n, 0.3, mean), roundBf16);
    const [rowData, weightData, biasData, gateData] = [small(WIDTH), small(WIDTH, 1), small(WIDTH), small(WIDTH)];
    using row = Tensor.from(rowData, [WIDTH], { device: DEVICE, dtype: 'bf16' });
    using weight = Tensor.from(weightData, [WIDTH], { device: DEVICE, dtype: 'bf16' });
    using bias = Tensor.from(biasData, [WIDTH], { device: DEVICE, dtype: 'bf16' });
    using gate = Tensor.from(gateData, [1, WIDTH], { device: DEVICE, dtype: 'bf16' });
    const rows = 2;
    using xc = Tensor.from(await tail(x, rows), [rows, WIDTH], { device: 'cpu' });
    using yc = Tensor.from(await tail(y, rows), [rows, WIDTH], { device: 'cpu' });
    using rowc = Tensor.from(rowData, [WIDTH], { device: 'cpu' });
    using weightc = Tensor.from(weightData, [WIDTH], { device: 'cpu' });
    using biasc = Tensor.from(biasData, [WIDTH], { device: 'cpu' });
    using gatec = Tensor.from(gateData, [1, WIDTH], { device: 'cpu' });
    const ops2: Array<[string, (a: Tensor, b: Tensor, r: Tensor, w: Tensor, bi: Tensor, g: Tensor) => Tensor]> = [
      ['add', (a, _b, r) => ops.add(a, r)],
      ['softmax', (a) => ops.softmax(a)],
      ['sum over the row', (a) => ops.sum(a, 1, true)],
      ['layerNorm', (a, _b, _r, w, bi) => layerNorm(a, { weight: w, bias: bi, eps: 1e-5 })],
      ['rmsNorm', (a, _b, _r, w) => rmsNorm(a, w, 1e-6)],
      ['gatedResidual', (a, b, _r, _w, _bi, g) => gatedResidual(a, b, g)],
    ];
    for (const [name, op] of ops2) {
      using out = op(x, y, row, weight, bias, gate);
      const expected = await cpuResult(op(xc, yc, rowc, weightc, biasc, gatec));
      expectRelErr(await tail(out, rows), expected, bf16Tolerance(expected), `${name} tail`);
    }
  });

  itUnlessEmulated('past 2^31: groupNorm+SiLU and upsampleResidual over 65,600 frames of 8x8x512', PAST_2_31_ON_EMULATOR, async () => {
    using x = randomNormal([FRAMES, ...FRAME], { seed: 35, dtype: 'bf16', device: DEVICE });
    using small = randomNormal([FRAMES / 2, FRAME[0] / 2, FRAME[1] / 2, FRAME[2]], { seed: 36, dtype: 'bf16', device: DEVICE });
    expectPast2To31(x);
    const C = FRAME[2];
    const rng = new Rng(37);
    const wData = Float32Array.from(randn(rng, C, 0.2, 1), roundBf16), bData = Float32Array.from(randn(rng, C, 0.2), roundBf16);
    using w = Tensor.from(wData, [C], { device: DEVICE, dtype: 'bf16' });
    using b = Tensor.from(bData, [C], { device: DEVICE, dtype: 'bf16' });
    using xc = Tensor.from(await tail(x, 2), [2, ...FRAME], { device: 'cpu' });
    using smallc = Tensor.from(await tail(small, 1), [1, FRAME[0] / 2, FRAME[1] / 2, C], { device: 'cpu' });
    using wc = Tensor.from(wData, [C], { device: 'cpu' });
    using bc = Tensor.from(bData, [C], { device: 'cpu' });
    {
      using out = groupNorm(x, w, b, { groups: 32, silu: true });
      const expected = await cpuResult(groupNorm(xc, wc, bc, { groups: 32, silu: true }));
      expectRelErr(await tail(out, 2), expected, bf16Tolerance(expected), 'groupNorm tail frames');
    }
    using out = upsampleResidual(x, small, { time: 2, space: 2 });
    const expected = await cpuResult(upsampleResidual(xc, smallc, { time: 2, space: 2 }));
    expectRelErr(await tail(out, 2), expected, bf16Tolerance(expected), 'upsampleResidual tail frames');
  });

  itUnlessEmulated('past 2^31: conv3d 64 -> 128 (3x3x3 causal) with an output of 2^31 + 2 M elements, every tensor-core kernel', PAST_2_31_ON_EMULATOR, async () => {
    const { T, H, W, cin, cout } = CONV;
    using x = randomNormal([1, T, H, W, cin], { seed: 38, dtype: 'bf16', device: DEVICE });
    const rng = new Rng(39);
    const wData = Float32Array.from(randn(rng, cout * cin * 27, 1 / Math.sqrt(cin * 27)), roundBf16);
    const bData = Float32Array.from(randn(rng, cout, 0.3), roundBf16);
    using torchLayout = Tensor.from(wData, [cout, cin, 3, 3, 3], { device: DEVICE, dtype: 'bf16' });
    using weight = repackConvWeight(torchLayout);
    using bias = Tensor.from(bData, [cout], { device: DEVICE, dtype: 'bf16' });
    const padding = { front: 2, top: 1, bottom: 1, left: 1, right: 1 };
    // The CPU twin sees input rows H-2 and H-1 of every frame: its output row 1 reads rows H-2, H-1 and the
    // bottom pad, exactly as the GPU's output row H-1 does (its row 0 would differ: a pad instead of row H-3).
    using rowsOnGpu = ops.slice(x, 2, H - 2, H);
    using rowsF32 = ops.cast(rowsOnGpu, 'f32');
    using xc = await rowsF32.to('cpu');
    using torchc = Tensor.from(wData, [cout, cin, 3, 3, 3], { device: 'cpu' });
    using weightc = repackConvWeight(torchc);
    using biasc = Tensor.from(bData, [cout], { device: 'cpu' });
    using twinOut = conv3d(xc, weightc, { bias: biasc, padding });
    using twinRow = ops.slice(twinOut, 2, 1, 2);  // [1, T, 1, W, cout]
    using twinLast = ops.slice(twinRow, 1, T - 1, T);
    const expected = await twinLast.toFloat32();
    const kernels = ['default', 'wgmma'] as const;
    expect(conv3dKernelName(x, weight, { bias, padding }), 'the default tensor-core kernel runs past 2^31').toBe('mma-128x128');
    for (const choice of kernels) {
      const run = () => conv3d(x, weight, { bias, padding });
      using out = choice === 'wgmma' ? withPolicy({ conv: 'wgmma' }, run) : run();
      expectPast2To31(out);
      using pixelRows = out.reshape(T * H, W, cout);
      expectRelErr(await tail(pixelRows, 1), expected, 6e-3, `conv3d (${choice}) last output row`);
    }
  });

  itUnlessEmulated('past 2^31: attention with q and out of 2^31 + 8192 elements (64 heads / 8 groups x 262,145 queries), tensor-core and generic paths', PAST_2_31_ON_EMULATOR, async () => {
    const { H, Hkv, Nq, Nk, D } = ATT;
    using q = randomNormal([1, H, Nq, D], { seed: 40, dtype: 'bf16', device: DEVICE });
    using k = randomNormal([1, Hkv, Nk, D], { seed: 41, dtype: 'bf16', device: DEVICE });
    using v = randomNormal([1, Hkv, Nk, D], { seed: 42, dtype: 'bf16', device: DEVICE });
    expectPast2To31(q);
    const rows = 2;
    using qRows = ops.slice(q, 2, Nq - rows, Nq);
    const toCpuF32 = async (t: Tensor) => {
      using f32 = ops.cast(t, 'f32');
      return await f32.to('cpu');
    };
    using qc = await toCpuF32(qRows);
    using kc = await toCpuF32(k);
    using vc = await toCpuF32(v);
    const expected = await cpuResult(attention(qc, kc, vc));  // [1, rows, H, D]
    for (const path of ['mma', 'generic'] as const) {
      using out = withPolicy({ attention: path }, () => attention(q, k, v));
      expectPast2To31(out);
      using tokens = out.reshape(Nq, H, D);
      // bf16 P before P·V and the rounded output, as in the real-size attention cases.
      expectRelErr(await tail(tokens, rows), expected, 8e-3, `attention (${path}) last queries`);
    }
  });

  itUnlessEmulated('past 2^31: matmul transB + bias with an output of 2^31 + 8192 elements, cuBLASLt and the fallback kernel', PAST_2_31_ON_EMULATOR, async () => {
    const { batch, m, k, n } = GEMM;
    using a = randomNormal([batch, m, k], { seed: 43, dtype: 'bf16', device: DEVICE });
    const rng = new Rng(44);
    const wData = Float32Array.from(randn(rng, n * k, 1 / Math.sqrt(k)), roundBf16), bData = Float32Array.from(randn(rng, n, 0.3), roundBf16);
    using w = Tensor.from(wData, [n, k], { device: DEVICE, dtype: 'bf16' });
    using b = Tensor.from(bData, [n], { device: DEVICE, dtype: 'bf16' });
    const rows = 2;
    using aRows = a.reshape(batch * m, k);
    using ac = Tensor.from(await tail(aRows, rows), [rows, k], { device: 'cpu' });
    using wc = Tensor.from(wData, [n, k], { device: 'cpu' });
    using bc = Tensor.from(bData, [n], { device: 'cpu' });
    const expected = await cpuResult(ops.matmul(ac, wc, { transB: true, bias: bc }));
    for (const path of ['cublaslt', 'fallback']) {
      const run = () => ops.matmul(a, w, { transB: true, bias: b });
      using out = path === 'fallback' ? withPolicy({ gemm: 'fallback' }, run) : run();
      expectPast2To31(out);
      using outRows = out.reshape(batch * m, n);
      expectRelErr(await tail(outRows, rows), expected, bf16Tolerance(expected), `matmul (${path}) last rows`);
    }
  });

  itUnlessEmulated('past 2^31: embedding of 2^24 + 64 ids and swiglu of [2^20 + 1, 2 x 1024]', PAST_2_31_ON_EMULATOR, async () => {
    const rng = new Rng(45);
    const tableData = Float32Array.from(randn(rng, EMB.vocab * EMB.dim), roundBf16);
    using table = Tensor.from(tableData, [EMB.vocab, EMB.dim], { device: DEVICE, dtype: 'bf16' });
    const ids = new Int32Array(EMB.ids);
    for (let i = 0; i < ids.length; i++) ids[i] = (i * 7919 + 13) % EMB.vocab;
    {
      using out = embedding(table, ids);
      expectPast2To31(out);
      const rows = 3;
      const got = await tail(out, rows);
      const expected = new Float32Array(rows * EMB.dim);
      for (let r = 0; r < rows; r++) {
        const id = ids[ids.length - rows + r]!;
        expected.set(tableData.subarray(id * EMB.dim, (id + 1) * EMB.dim), r * EMB.dim);
      }
      expect(Array.from(got), 'the last embedded rows are the table rows').toEqual(Array.from(expected));
    }
    using x = randomNormal([SWIGLU.rows, 2 * SWIGLU.half], { seed: 46, dtype: 'bf16', device: DEVICE });
    expectPast2To31(x);
    using out = swiglu(x);
    using xc = Tensor.from(await tail(x, 2), [2, 2 * SWIGLU.half], { device: 'cpu' });
    const expected = await cpuResult(swiglu(xc));
    expectRelErr(await tail(out, 2), expected, bf16Tolerance(expected), 'swiglu last rows');
  });
});
