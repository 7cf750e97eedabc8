// Cases of the convolution family (native/conv.h). Weights are given in PyTorch's layout and
// repacked by repackConvWeight inside run(), so the repack is checked too. Small cases cover every
// VAE convolution form (causal k3, upsampled, strided, per-frame 2D with the asymmetric pad, 1×1×1,
// Cin 3/4 of the first convs, Cout 3 of conv_out) and every CUDA kernel choice (the tensor-core tile
// shapes by Cout, the SIMT kernel for Cin % 32 != 0 and for f32); real decoder/encoder shapes are in
// convLargeCases().
import { type DType, roundBf16 } from '../../lib/dtype.js';
import { type ConvPadding, conv3d, repackConvWeight } from '../../lib/kernels/conv.js';
import { randomNormal } from '../../lib/kernels/random.js';
import * as ops from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { fitEmulated } from '../helpers/gpu.js';
import { Rng, randn, randu } from '../helpers/random.js';
import type { LargeCase, OpCase } from './types.js';

export interface ConvSpec {
  /** x [B, T, H, W, Cin] (channels last). */
  input: [number, number, number, number, number];
  cout: number;
  kernel: [number, number, number];
  stride?: [number, number, number];
  padding?: Partial<ConvPadding>;
  upsample?: { time?: number; space?: number };
  bias?: boolean;
  residual?: boolean;
}

function fullPadding(p: Partial<ConvPadding> | undefined): ConvPadding {
  return { front: 0, back: 0, top: 0, bottom: 0, left: 0, right: 0, ...p };
}

export function convOutputShape(spec: ConvSpec): [number, number, number, number, number] {
  const [B, T, H, W] = spec.input;
  const [kt, kh, kw] = spec.kernel;
  const [st, sh, sw] = spec.stride ?? [1, 1, 1];
  const p = fullPadding(spec.padding);
  const ut = spec.upsample?.time ?? 1, us = spec.upsample?.space ?? 1;
  return [
    B,
    Math.floor((T * ut + p.front + p.back - kt) / st) + 1,
    Math.floor((H * us + p.top + p.bottom - kh) / sh) + 1,
    Math.floor((W * us + p.left + p.right - kw) / sw) + 1,
    spec.cout,
  ];
}

/**
 * float64 convolution straight from the definition in native/conv.h, with the weight in PyTorch's
 * layout [Cout, Cin, kt, kh, kw]: x nearest-upsampled, zero-padded, strided.
 */
export function convRef(spec: ConvSpec, x: ArrayLike<number>, w: ArrayLike<number>, bias?: ArrayLike<number>, residual?: ArrayLike<number>): Float64Array {
  const [B, T, H, W, C] = spec.input;
  const [, To, Ho, Wo, Co] = convOutputShape(spec);
  const [kt, kh, kw] = spec.kernel;
  const [st, sh, sw] = spec.stride ?? [1, 1, 1];
  const p = fullPadding(spec.padding);
  const ut = spec.upsample?.time ?? 1, us = spec.upsample?.space ?? 1;
  const taps = kt * kh * kw;
  const out = new Float64Array(B * To * Ho * Wo * Co);
  const offsets = new Int32Array(taps);
  for (let b = 0; b < B; b++)
    for (let to = 0; to < To; to++)
      for (let ho = 0; ho < Ho; ho++)
        for (let wo = 0; wo < Wo; wo++) {
          for (let tap = 0; tap < taps; tap++) {
            const dt = Math.floor(tap / (kh * kw)), dh = Math.floor(tap / kw) % kh, dw = tap % kw;
            const tv = to * st + dt - p.front, hv = ho * sh + dh - p.top, wv = wo * sw + dw - p.left;
            const inside = tv >= 0 && tv < T * ut && hv >= 0 && hv < H * us && wv >= 0 && wv < W * us;
            offsets[tap] = inside ? (((b * T + Math.floor(tv / ut)) * H + Math.floor(hv / us)) * W + Math.floor(wv / us)) * C : -1;
          }
          const pixel = ((b * To + to) * Ho + ho) * Wo + wo;
          for (let co = 0; co < Co; co++) {
            let acc = bias ? bias[co]! : 0;
            for (let tap = 0; tap < taps; tap++) {
              const at = offsets[tap]!;
              if (at < 0) continue;
              for (let ci = 0; ci < C; ci++) acc += x[at + ci]! * w[(co * C + ci) * taps + tap]!;
            }
            if (residual) acc += residual[pixel * Co + co]!;
            out[pixel * Co + co] = acc;
          }
        }
  return out;
}

export function convCase(name: string, spec: ConvSpec, seed: number): OpCase {
  const rng = new Rng(seed);
  const [B, T, H, W, C] = spec.input;
  const [kt, kh, kw] = spec.kernel;
  const outShape = convOutputShape(spec);
  const fanIn = C * kt * kh * kw;
  const inputs: OpCase['inputs'] = [
    { shape: [B, T, H, W, C], data: randn(rng, B * T * H * W * C) },
    { shape: [spec.cout, C, kt, kh, kw], data: randu(rng, spec.cout * fanIn, -Math.sqrt(3 / fanIn), Math.sqrt(3 / fanIn)) },
  ];
  if (spec.bias) inputs.push({ shape: [spec.cout], data: randn(rng, spec.cout, 0.3) });
  if (spec.residual) inputs.push({ shape: outShape, data: randn(rng, outShape.reduce((a, b) => a * b, 1)) });
  return {
    name,
    inputs,
    run: ([x, weight, ...rest]) => {
      using packed = repackConvWeight(weight!);
      const bias = spec.bias ? rest[0] : undefined;
      const residual = spec.residual ? rest[spec.bias ? 1 : 0] : undefined;
      return conv3d(x!, packed, {
        ...(spec.stride ? { stride: spec.stride } : {}),
        ...(spec.padding ? { padding: spec.padding } : {}),
        ...(spec.upsample ? { upsample: spec.upsample } : {}),
        ...(bias ? { bias } : {}),
        ...(residual ? { residual } : {}),
      });
    },
    reference: ([x, weight, ...rest]) =>
      convRef(spec, x!, weight!, spec.bias ? rest[0] : undefined, spec.residual ? rest[spec.bias ? 1 : 0] : undefined),
    // f32 accumulation over up to 27 x 512 products in a different order than the float64 sum.
    tolerance: 1e-5,
  };
}

const causal3 = { front: 2, top: 1, bottom: 1, left: 1, right: 1 };

export function convCases(): OpCase[] {
  return [
    // Tensor-core tiles by Cout (bf16 on the GPU): 128x64 with a partial N tile, B = 2.
    convCase('conv3d causal k3, 64 -> 48 + bias + residual, B 2, odd 3x5x7', { input: [2, 3, 5, 7, 64], cout: 48, kernel: [3, 3, 3], padding: causal3, bias: true, residual: true }, 500),
    // 128x128 tiles, several N tiles, several M tiles with a partial one (2 x 9 x 11 = 198 rows).
    convCase('conv3d causal k3, 128 -> 160, odd 2x9x11 (several M and N tiles)', { input: [1, 2, 9, 11, 128], cout: 160, kernel: [3, 3, 3], padding: causal3, bias: true }, 501),
    // The decoder's real widths at tiny spatial sizes.
    convCase('conv3d causal k3 at real width 512 -> 512, 2x3x5', { input: [1, 2, 3, 5, 512], cout: 512, kernel: [3, 3, 3], padding: causal3, bias: true, residual: true }, 502),
    convCase('conv3d causal k3 at real widths 256 -> 128, 3x3x5', { input: [1, 3, 3, 5, 256], cout: 128, kernel: [3, 3, 3], padding: causal3, bias: true }, 503),
    // Upsample3D conv1: nearest x2 in T, H, W resolved on read, then the causal pad on the upsampled frames.
    convCase('conv3d causal k3 on x upsampled x2 in T,H,W (Upsample3D), 32 -> 32, 2x3x5 -> 4x6x10', { input: [1, 2, 3, 5, 32], cout: 32, kernel: [3, 3, 3], padding: causal3, upsample: { time: 2, space: 2 }, bias: true }, 504),
    // Downsample3D: causal pad 2, spatial pad 1, stride 2 in every axis.
    convCase('conv3d causal k3 stride 2 (Downsample3D), 32 -> 32, 5x6x7 -> 3x3x4', { input: [1, 5, 6, 7, 32], cout: 32, kernel: [3, 3, 3], stride: [2, 2, 2], padding: causal3, bias: true }, 505),
    // Downsample2D: per frame, zero pad right and bottom only, stride 2.
    convCase('conv2d 3x3 stride 2 with the right/bottom pad (Downsample2D), 32 -> 64, 3 frames 8x6', { input: [1, 3, 8, 6, 32], cout: 64, kernel: [1, 3, 3], stride: [1, 2, 2], padding: { bottom: 1, right: 1 }, bias: true }, 506),
    // Upsample2D: per frame nearest x2 then a padded 3x3 conv.
    convCase('conv2d 3x3 on x upsampled x2 (Upsample2D), 64 -> 32, 2 frames 3x5 -> 6x10', { input: [1, 2, 3, 5, 64], cout: 32, kernel: [1, 3, 3], padding: { top: 1, bottom: 1, left: 1, right: 1 }, upsample: { space: 2 }, bias: true }, 507),
    // 1x1x1: nin_shortcut and the attention projections (proj_out adds the residual).
    convCase('conv 1x1x1 + residual (nin_shortcut, attention proj_out), 96 -> 64', { input: [1, 3, 4, 5, 96], cout: 64, kernel: [1, 1, 1], bias: true, residual: true }, 508),
    // SIMT in every dtype: Cin not a multiple of 32.
    convCase('conv3d causal k3, Cin 40 (SIMT kernel), 40 -> 24', { input: [1, 2, 4, 5, 40], cout: 24, kernel: [3, 3, 3], padding: causal3, bias: true }, 509),
    convCase('conv3d causal k3, encoder conv_in 3 -> 32 (RGB)', { input: [1, 5, 6, 7, 3], cout: 32, kernel: [3, 3, 3], padding: causal3, bias: true }, 510),
    convCase('conv3d causal k3, decoder conv_in z 4 -> 128 + residual', { input: [1, 3, 4, 4, 4], cout: 128, kernel: [3, 3, 3], padding: causal3, bias: true, residual: true }, 511),
    // conv_out: 3 output channels (128x16 tiles, odd Cout: unpaired stores).
    convCase('conv3d causal k3, conv_out 32 -> 3', { input: [1, 4, 6, 5, 32], cout: 3, kernel: [3, 3, 3], padding: causal3, bias: true }, 512),
    convCase('conv3d causal k3, 64 -> 20 (128x32 tiles), no bias', { input: [1, 2, 5, 3, 64], cout: 20, kernel: [3, 3, 3], padding: causal3 }, 513),
  ];
}

// ---- real sizes (GPU suite; CPU twin on a window of the output) ----

/** Uniform values in [lo, hi) rounded to bf16, so f32 and bf16 runs and the CPU twin see the same numbers. */
function bf16Uniform(rng: Rng, n: number, lo: number, hi: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = roundBf16(lo + (hi - lo) * rng.next());
  return out;
}

/**
 * Seeded standard-normal channels-last video [T, H, W, C] made on the GPU by the counter-based
 * generator (randomNormal: Philox of the element's index), in bf16: every element drawn on its own,
 * so no period in any axis and no structure a kernel's indexing error could hide in (a pixel read
 * from the wrong row or frame differs), in one pass over the tensor, nothing uploaded. The f32 runs
 * cast these bf16 values, and the CPU twin reads its region back from them: all see the same numbers.
 */
function randomVideoOnGpu(shape: [number, number, number, number], seed: number): Tensor {
  return randomNormal(shape, { seed, dtype: 'bf16', device: 'cuda' });
}

/** Region [start, end) of each of the first three axes of a [T, H, W, C] tensor, copied to the host as f32. */
async function regionToCpu(t: Tensor, ranges: Array<[number, number]>): Promise<Tensor> {
  let current = t;
  const temps: Tensor[] = [];
  for (const [axis, [start, end]] of ranges.entries()) {
    current = ops.slice(current, axis, start, end);
    temps.push(current);
  }
  try {
    const f32 = ops.cast(current, 'f32');
    temps.push(f32);
    return await f32.to('cpu');
  } finally {
    for (const temp of temps) temp.dispose();
  }
}

interface LargeConvSpec {
  name: string;
  /** x [T, H, W, Cin] (batch 1). */
  input: [number, number, number, number];
  cout: number;
  kernel: [number, number, number];
  stride?: [number, number, number];
  padding?: Partial<ConvPadding>;
  upsample?: { time?: number; space?: number };
  residual?: boolean;
  /** Output window compared with the CPU twin: frames, rows, columns [start, end). */
  window: [[number, number], [number, number], [number, number]];
  seed: number;
  dtypes?: ReadonlyArray<'f32' | 'bf16'>;
}

/**
 * A convolution at a real VAE size, run whole on the GPU (runGpu returns the compared window,
 * sliced on the GPU: the full outputs are gigabytes). The CPU twin convolves just the input region
 * the window reads: upsampled on the host and padded only where the window touches a border.
 */
function largeConvCase(spec: LargeConvSpec): LargeCase {
  const [T, H, W, C] = spec.input;
  const full: ConvSpec = { input: [1, T, H, W, C], cout: spec.cout, kernel: spec.kernel, ...(spec.stride ? { stride: spec.stride } : {}), ...(spec.padding ? { padding: spec.padding } : {}), ...(spec.upsample ? { upsample: spec.upsample } : {}) };
  const [, To, Ho, Wo] = convOutputShape(full);
  const [kt, kh, kw] = spec.kernel;
  const stride = spec.stride ?? [1, 1, 1];
  const p = fullPadding(spec.padding);
  const up = [spec.upsample?.time ?? 1, spec.upsample?.space ?? 1, spec.upsample?.space ?? 1];
  const fanIn = C * kt * kh * kw;
  let made: { x: Tensor; weight: Tensor; bias: Tensor; residual?: Tensor; hostWeight: Float32Array; hostBias: Float32Array } | undefined;
  const inputs = () => {
    if (made) return made;
    const rng = new Rng(spec.seed);
    const hostWeight = bf16Uniform(rng, spec.cout * fanIn, -Math.sqrt(3 / fanIn), Math.sqrt(3 / fanIn));
    const hostBias = bf16Uniform(rng, spec.cout, -0.5, 0.5);
    using torchLayout = Tensor.from(hostWeight, [spec.cout, C, kt, kh, kw], { device: 'cuda' });
    made = {
      x: randomVideoOnGpu(spec.input, spec.seed + 1),
      weight: repackConvWeight(torchLayout),
      bias: Tensor.from(hostBias, [spec.cout], { device: 'cuda' }),
      ...(spec.residual ? { residual: randomVideoOnGpu([To, Ho, Wo, spec.cout], spec.seed + 2) } : {}),
      hostWeight,
      hostBias,
    };
    return made;
  };
  const windowSize = spec.window.reduce((n, [a, b]) => n * (b - a), spec.cout);
  for (const [axis, [a, b]] of spec.window.entries()) {
    if (!(a >= 0 && b > a && b <= [To, Ho, Wo][axis]!)) throw new Error(`${spec.name}: window axis ${axis} outside the output`);
  }
  return {
    name: spec.name,
    ...(spec.dtypes ? { dtypes: spec.dtypes } : {}),
    async runGpu(dtype: DType) {
      const { x, weight, bias, residual } = inputs();
      using xd = ops.cast(x, dtype);
      using wd = ops.cast(weight, dtype);
      using bd = ops.cast(bias, dtype);
      using rd = residual ? ops.cast(residual, dtype) : undefined;
      using out = conv3d(xd, wd, { bias: bd, ...(rd ? { residual: rd } : {}), ...(spec.stride ? { stride: spec.stride } : {}), ...(spec.padding ? { padding: spec.padding } : {}), ...(spec.upsample ? { upsample: spec.upsample } : {}) });
      const window = await regionToCpu(out, spec.window);
      if (dtype === (spec.dtypes ?? ['f32', 'bf16']).at(-1)) {
        for (const t of [made!.x, made!.weight, made!.bias, made!.residual]) t?.dispose();
        made = undefined;
      }
      return window;
    },
    async runCpuSample() {
      const { x, residual, hostWeight, hostBias } = inputs();
      // Virtual input region the window reads, clipped to the upsampled input; the clipped part is padding.
      const kernel = [kt, kh, kw], before = [p.front, p.top, p.left], virtual = [T * up[0]!, H * up[1]!, W * up[2]!];
      const region = spec.window.map(([a, b], axis) => {
        const start = a * stride[axis]! - before[axis]!, end = (b - 1) * stride[axis]! + kernel[axis]! - before[axis]!;
        const lo = Math.max(0, start), hi = Math.min(virtual[axis]!, end);
        const source: [number, number] = [Math.floor(lo / up[axis]!), Math.ceil(hi / up[axis]!)];
        return { lo, hi, padBefore: lo - start, padAfter: end - hi, source };
      });
      using sourceRegion = await regionToCpu(x, region.map((r) => r.source));
      // Nearest upsampling on the host, then the exact virtual region.
      const [st, sh, sw, sc] = sourceRegion.shape as [number, number, number, number];
      using spread = sourceRegion.reshape(st, 1, sh, 1, sw, 1, sc);
      using expanded = ops.expand(spread, [st, up[0]!, sh, up[1]!, sw, up[2]!, sc]);
      using upsampled = expanded.reshape(st * up[0]!, sh * up[1]!, sw * up[2]!, sc);
      using t0 = ops.slice(upsampled, 0, region[0]!.lo - region[0]!.source[0] * up[0]!, region[0]!.hi - region[0]!.source[0] * up[0]!);
      using t1 = ops.slice(t0, 1, region[1]!.lo - region[1]!.source[0] * up[1]!, region[1]!.hi - region[1]!.source[0] * up[1]!);
      using xv = ops.slice(t1, 2, region[2]!.lo - region[2]!.source[0] * up[2]!, region[2]!.hi - region[2]!.source[0] * up[2]!);
      using torchLayout = Tensor.from(hostWeight, [spec.cout, C, kt, kh, kw], { device: 'cpu' });
      using weight = repackConvWeight(torchLayout);
      using bias = Tensor.from(hostBias, [spec.cout], { device: 'cpu' });
      using residualWindow = residual ? await regionToCpu(residual, spec.window) : undefined;
      using out = conv3d(xv, weight, {
        bias,
        ...(residualWindow ? { residual: residualWindow } : {}),
        stride,
        padding: {
          front: region[0]!.padBefore, back: region[0]!.padAfter,
          top: region[1]!.padBefore, bottom: region[1]!.padAfter,
          left: region[2]!.padBefore, right: region[2]!.padAfter,
        },
      });
      const values = await out.toFloat32();
      if (values.length !== windowSize) throw new Error(`${spec.name}: CPU twin window has ${values.length} values, expected ${windowSize}`);
      return values;
    },
    sample: (output) => output,
    // bf16: one output rounding (2^-9) and accumulation-order differences over up to 55,296 products.
    tolerance: { f32: 2e-5, bf16: 6e-3 },
  };
}

/**
 * On the emulated device (test/helpers/gpu.ts) a real-size case keeps its channels, kernel, stride,
 * padding and upsampling (so the same kernel and tile shapes run, with every K step) at a smaller
 * video, its window touching the same borders and the causal start where the real one does. A
 * tensor-core block computes a whole 128-pixel M tile however few pixels are left, so the widest
 * case (2048 -> 4096: 58 GFLOP per M tile, over a minute emulated) also keeps fewer output channels.
 */
function fitConv(spec: LargeConvSpec, emulated: Pick<LargeConvSpec, 'input' | 'window'> & { cout?: number }): LargeConvSpec {
  const size = ([t, h, w]: readonly number[]) => `${t}x${h}x${w}`;
  const cout = emulated.cout !== undefined && emulated.cout !== spec.cout ? `Cout ${spec.cout} -> ${emulated.cout}, ` : '';
  const fitted = fitEmulated(spec, { ...spec, ...emulated }, `${cout}${size(spec.input)} -> ${size(emulated.input)} to fit CI time`);
  return { ...fitted.value, name: spec.name + fitted.note };
}

export function convLargeCases(): LargeCase[] {
  const causal = (k = 3) => ({ front: k - 1, top: Math.floor(k / 2), bottom: Math.floor(k / 2), left: Math.floor(k / 2), right: Math.floor(k / 2) });
  // Windows touch a border (padding) and an interior stretch; frames include the causal start.
  return [
    fitConv({ name: 'conv3d decoder conv_unpatchify 2048 -> 4096 at 3x34x62', input: [3, 34, 62, 2048], cout: 4096, kernel: [3, 3, 3], padding: causal(), window: [[0, 3], [0, 1], [59, 62]], seed: 520, dtypes: ['bf16'] },
      { input: [2, 1, 2, 2048], cout: 256, window: [[0, 2], [0, 1], [0, 2]] }),
    fitConv({ name: 'conv3d decoder mid 512 -> 512 + residual at 5x68x124', input: [5, 68, 124, 512], cout: 512, kernel: [3, 3, 3], padding: causal(), residual: true, window: [[3, 5], [66, 68], [0, 5]], seed: 521 },
      { input: [3, 5, 9, 512], window: [[1, 3], [3, 5], [0, 5]] }),
    fitConv({ name: 'conv3d decoder Upsample3D conv1 512 -> 512, x2 on read, 10x136x248 -> 20x272x496', input: [10, 136, 248, 512], cout: 512, kernel: [3, 3, 3], padding: causal(), upsample: { time: 2, space: 2 }, window: [[0, 2], [135, 137], [492, 496]], seed: 522, dtypes: ['bf16'] },
      { input: [1, 3, 4, 512], window: [[0, 2], [2, 4], [4, 8]] }),
    fitConv({ name: 'conv3d decoder up.1 block conv1 512 -> 256 at 20x272x496', input: [20, 272, 496, 512], cout: 256, kernel: [3, 3, 3], padding: causal(), window: [[19, 20], [0, 2], [200, 204]], seed: 523, dtypes: ['bf16'] },
      { input: [3, 5, 9, 512], window: [[2, 3], [0, 2], [4, 8]] }),
    fitConv({ name: 'conv2d decoder Upsample2D 256 -> 256, x2 on read, 6x272x496 -> 6x544x992', input: [6, 272, 496, 256], cout: 256, kernel: [1, 3, 3], padding: { top: 1, bottom: 1, left: 1, right: 1 }, upsample: { space: 2 }, window: [[5, 6], [541, 544], [0, 4]], seed: 524, dtypes: ['bf16'] },
      { input: [2, 5, 8, 256], window: [[1, 2], [7, 10], [0, 4]] }),
    fitConv({ name: 'conv3d decoder up.0 block conv1 256 -> 128 at 6x544x992', input: [6, 544, 992, 256], cout: 128, kernel: [3, 3, 3], padding: causal(), window: [[0, 2], [300, 302], [988, 992]], seed: 525, dtypes: ['bf16'] },
      { input: [3, 10, 16, 256], window: [[0, 2], [5, 7], [12, 16]] }),
    fitConv({ name: 'conv3d decoder conv_out 128 -> 3 at 6x544x992', input: [6, 544, 992, 128], cout: 3, kernel: [3, 3, 3], padding: causal(), window: [[4, 6], [0, 8], [0, 16]], seed: 526 },
      { input: [3, 12, 20, 128], window: [[1, 3], [0, 8], [0, 16]] }),
    fitConv({ name: 'conv 1x1x1 decoder nin_shortcut 512 -> 256 + residual at 20x272x496', input: [20, 272, 496, 512], cout: 256, kernel: [1, 1, 1], residual: true, window: [[7, 8], [100, 104], [490, 496]], seed: 527, dtypes: ['bf16'] },
      { input: [3, 8, 12, 512], window: [[1, 2], [3, 7], [6, 12]] }),
    fitConv({ name: 'conv3d encoder Downsample3D 256, stride 2, 17x272x496 -> 9x136x248', input: [17, 272, 496, 256], cout: 256, kernel: [3, 3, 3], stride: [2, 2, 2], padding: causal(), window: [[0, 2], [134, 136], [0, 4]], seed: 528, dtypes: ['bf16'] },
      { input: [5, 10, 12, 256], window: [[0, 2], [3, 5], [0, 4]] }),
    fitConv({ name: 'conv2d encoder Downsample2D 128, stride 2, right/bottom pad, 4x544x992 -> 4x272x496', input: [4, 544, 992, 128], cout: 128, kernel: [1, 3, 3], stride: [1, 2, 2], padding: { bottom: 1, right: 1 }, window: [[3, 4], [270, 272], [492, 496]], seed: 529 },
      { input: [2, 12, 20, 128], window: [[1, 2], [4, 6], [6, 10]] }),
  ].map(largeConvCase);
}
