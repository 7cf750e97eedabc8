// The conv3d tensor-core kernels against the CPU twin, each forced explicitly: the default mma.sync
// kernel (every tile shape) and the opt-in Hopper wgmma kernel (kernel policy conv = wgmma, sm_90a
// builds on compute capability 9.0). Inputs are bf16 values, so the CPU twin (f32) sees the same
// numbers; the error left is the output rounding and the accumulation order. The kernel cases in
// test/cases/conv.ts cover the default dispatch in f32 and bf16 as well.
import { afterEach, expect, it } from 'vitest';

import { getDevice } from '../../lib/device.js';
import { roundBf16 } from '../../lib/dtype.js';
import { conv3d, conv3dKernelName, repackConvWeight } from '../../lib/kernels/conv.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { type ConvSpec, convLargeCases } from '../cases/conv.js';
import { expectRelErr, relErr } from '../helpers/compare.js';
import { describeGpu, fitEmulated } from '../helpers/gpu.js';
import { Rng } from '../helpers/random.js';

function bf16Values(rng: Rng, n: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, () => roundBf16((rng.next() * 2 - 1) * scale));
}

const causal3 = { front: 2, top: 1, bottom: 1, left: 1, right: 1 };

// Shapes where both tensor-core kernels apply (Cin % 64 == 0, Cout > 64) plus tile edges. On the
// emulated device (test/helpers/gpu.ts) a block computes its whole 128-pixel M tile at about
// 1 GFLOP/s, so the two widest shapes keep their inner size (every K step) with fewer M or N tiles.
const fitSpec = (name: string, spec: ConvSpec, emulated: Partial<ConvSpec>, change: string) => {
  const fitted = fitEmulated(spec, { ...spec, ...emulated }, `${change} to fit CI time`);
  return { name: name + fitted.note, spec: fitted.value };
};
const specs: Array<{ name: string; spec: ConvSpec }> = [
  { name: '64 -> 128, B 2, odd 3x5x7, residual', spec: { input: [2, 3, 5, 7, 64], cout: 128, kernel: [3, 3, 3], padding: causal3, bias: true, residual: true } },
  { name: '128 -> 160 (partial N tile), 2x9x11 (partial M tile)', spec: { input: [1, 2, 9, 11, 128], cout: 160, kernel: [3, 3, 3], padding: causal3, bias: true } },
  fitSpec('512 -> 512 at 3x7x9', { input: [1, 3, 7, 9, 512], cout: 512, kernel: [3, 3, 3], padding: causal3, bias: true, residual: true },
    { input: [1, 2, 7, 9, 512] }, '3x7x9 -> 2x7x9 (two M tiles -> one)'),
  { name: '256 -> 128, x2 on read in T,H,W, 2x5x6 -> 4x10x12', spec: { input: [1, 2, 5, 6, 256], cout: 128, kernel: [3, 3, 3], padding: causal3, upsample: { time: 2, space: 2 }, bias: true } },
  { name: '128 -> 256 stride 2 (Downsample3D-like), 5x8x10', spec: { input: [1, 5, 8, 10, 128], cout: 256, kernel: [3, 3, 3], stride: [2, 2, 2], padding: causal3, bias: true } },
  fitSpec('2048 -> 4096 (unpatchify width) at 3x2x3', { input: [1, 3, 2, 3, 2048], cout: 4096, kernel: [3, 3, 3], padding: causal3, bias: true },
    { cout: 128 }, 'Cout 4096 -> 128 (58 GFLOP -> 1.8 per kernel)'),
  { name: '256 -> 128 1x1x1 + residual', spec: { input: [1, 3, 6, 7, 256], cout: 128, kernel: [1, 1, 1], bias: true, residual: true } },
];

function makeInputs(spec: ConvSpec, seed: number) {
  const rng = new Rng(seed);
  const [B, T, H, W, C] = spec.input;
  const [kt, kh, kw] = spec.kernel;
  const fan = C * kt * kh * kw;
  return { x: bf16Values(rng, B * T * H * W * C, 2), w: bf16Values(rng, spec.cout * fan, Math.sqrt(3 / fan)), b: bf16Values(rng, spec.cout, 0.5) };
}

async function runConv(spec: ConvSpec, data: ReturnType<typeof makeInputs>, device: 'cpu' | 'cuda', dtype: 'f32' | 'bf16'): Promise<{ values: Float32Array; kernel: string }> {
  const [kt, kh, kw] = spec.kernel;
  using x = Tensor.from(data.x, spec.input, { device, dtype });
  using torchLayout = Tensor.from(data.w, [spec.cout, spec.input[4], kt, kh, kw], { device, dtype });
  using weight = repackConvWeight(torchLayout);
  using bias = Tensor.from(data.b, [spec.cout], { device, dtype });
  const options = { bias, ...(spec.stride ? { stride: spec.stride } : {}), ...(spec.padding ? { padding: spec.padding } : {}), ...(spec.upsample ? { upsample: spec.upsample } : {}) };
  const kernel = conv3dKernelName(x, weight, options);
  let residual: Tensor | undefined;
  if (spec.residual) {
    using probe = conv3d(x, weight, options);
    residual = Tensor.from(bf16Values(new Rng(99), probe.numel, 1), probe.shape, { device, dtype });
  }
  using r = residual;
  using out = conv3d(x, weight, { ...options, ...(r ? { residual: r } : {}) });
  return { values: await out.toFloat32(), kernel };
}

describeGpu('conv3d tensor-core kernels vs the CPU twin', () => {
  afterEach(() => {
    getDevice('cuda').setKernelPolicy({ conv: 'auto' });
  });

  const cc = (() => {
    try {
      return getDevice('cuda').info().computeCapability;
    } catch {
      return '';
    }
  })();

  for (const [i, { name, spec }] of specs.entries()) {
    it(`${name}: mma.sync (default) and wgmma (sm_90a) in bf16`, async () => {
      const data = makeInputs(spec, 700 + i);
      const cpu = await runConv(spec, data, 'cpu', 'f32');
      const mma = await runConv(spec, data, 'cuda', 'bf16');
      expect(mma.kernel).toMatch(/^mma-/);
      const tolerance = 6e-3;
      expectRelErr(mma.values, cpu.values, tolerance, `${name} ${mma.kernel}`);
      getDevice('cuda').setKernelPolicy({ conv: 'wgmma' });
      const wg = await runConv(spec, data, 'cuda', 'bf16');
      if (cc.startsWith('9.0')) expect(wg.kernel).toBe('wgmma-128x128');
      const err = expectRelErr(wg.values, cpu.values, tolerance, `${name} ${wg.kernel}`);
      console.log(`conv ${name}: ${mma.kernel} rel ${relErr(mma.values, cpu.values).toExponential(2)}, ${wg.kernel} rel ${err.toExponential(2)}`);
    });
  }

  // Two real decoder shapes through the wgmma kernel (the large cases' own CPU twin windows).
  for (const large of convLargeCases().filter((c) => /mid 512|up\.0 block conv1/.test(c.name))) {
    it(`${large.name} through wgmma (real size, sampled)`, async () => {
      const expected = await large.runCpuSample();
      getDevice('cuda').setKernelPolicy({ conv: 'wgmma' });
      for (const dtype of large.dtypes ?? (['f32', 'bf16'] as const)) {
        using out = await large.runGpu(dtype);
        expectRelErr(large.sample(await out.toFloat32()), expected, large.tolerance[dtype], `${large.name} ${dtype} (wgmma where it applies)`);
      }
    });
  }

  it('f16 runs through the tensor-core kernels too', async () => {
    const spec: ConvSpec = { input: [1, 2, 5, 6, 64], cout: 96, kernel: [3, 3, 3], padding: causal3, bias: true };
    const data = makeInputs(spec, 720);
    const cpu = await runConv(spec, data, 'cpu', 'f32');
    const [kt, kh, kw] = spec.kernel;
    using x = Tensor.from(data.x, spec.input, { device: 'cuda', dtype: 'f16' });
    using torchLayout = Tensor.from(data.w, [spec.cout, 64, kt, kh, kw], { device: 'cuda', dtype: 'f16' });
    using weight = repackConvWeight(torchLayout);
    using bias = Tensor.from(data.b, [spec.cout], { device: 'cuda', dtype: 'f16' });
    using out = conv3d(x, weight, { bias, padding: causal3 });
    using f32 = ops.cast(out, 'f32');
    expectRelErr(await f32.toFloat32(), cpu.values, 3e-3, 'f16 conv');
  });
});
