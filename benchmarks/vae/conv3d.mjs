// The conv3d kernel at the VAE decoder's real shapes (benchmarks/vae/shapes.json: one 17-frame
// chunk at 544x992, released widths), bf16: achieved TFLOP/s, the floor (FLOPs over the H200's bf16
// GEMM ceiling, or bytes over its copy bandwidth, whichever is larger) and the ratio to cuDNN's
// conv3d measured by conv3d_torch.py in the same run (--torch names its result file). Nearest
// upsampling and the causal zero frames are resolved on read inside our timed region; the PyTorch
// baseline gets its input already upsampled and padded.
// Each shape runs with the default dispatch (mma.sync tensor cores) and with the opt-in Hopper kernel
// (kernel policy conv = wgmma; the `kernel` field says which ran).
//   node benchmarks/vae/conv3d.mjs [--torch=FILE] [--only=SUBSTRING] [--iterations=5] [--variants=default,wgmma]
// (--device=cpu --shrink=8 --only=conv_in checks the script itself on any machine, in f32.)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { H200, environment, library, parseFlags, report, time } from '../lib/harness.mjs';

const flags = parseFlags();
const sv = await library();
const { conv3d, conv3dKernelName, randomNormal } = sv.kernels;
const device = sv.getDevice(flags.device ?? 'cuda');
const dtype = device.isCuda ? 'bf16' : 'f32';
const shrink = Number(flags.shrink ?? 1);
const iterations = Number(flags.iterations ?? 5);
const { shapes } = JSON.parse(readFileSync(fileURLToPath(new URL('./shapes.json', import.meta.url)), 'utf8'));
const torch = flags.torch ? JSON.parse(readFileSync(flags.torch, 'utf8')) : [];
const env = environment(device);
const variants = String(flags.variants ?? (device.isCuda ? 'default,wgmma' : 'default')).split(',');

/** One shape: median time, FLOPs, floor. */
async function measure(shape, index) {
  const [t, h, w, cin] = shape.input;
  const [kt, kh, kw] = shape.kernel;
  const [front, ph, pw] = shape.padding;
  const [ut, us] = shape.upsample;
  const [H, W] = [Math.max(1, Math.round(h / shrink)), Math.max(1, Math.round(w / shrink))];
  const x = randomNormal([t, H, W, cin], { seed: 10 + index, dtype, device });
  const raw = randomNormal([shape.cout, kt, kh, kw, cin], { seed: 100 + index, dtype, device });
  const weight = sv.ops.scale(raw, 1 / Math.sqrt(cin * kt * kh * kw));
  raw.dispose();
  const bias = sv.Tensor.zeros([shape.cout], dtype, device);
  const options = { bias, padding: { front, top: ph, bottom: ph, left: pw, right: pw }, upsample: { time: ut, space: us } };
  try {
    const kernel = conv3dKernelName(x, weight, options);
    let outBytes = 0;
    let outputs = 0;
    const timing = await time(device, () => {
      const out = conv3d(x, weight, options);
      outBytes = out.byteLength;
      outputs = out.numel / shape.cout;
      out.dispose();
    }, { warmup: 2, iterations });
    const flops = 2 * outputs * shape.cout * cin * kt * kh * kw;
    const bytes = x.byteLength + weight.byteLength + outBytes;
    const floorMs = Math.max(flops / H200.bf16GemmFlops, bytes / H200.copyBytesPerSecond) * 1e3;
    return { kernel, ms: timing.medianMs, flops, floorMs };
  } finally {
    for (const tensor of [x, weight, bias]) tensor.dispose();
  }
}

for (const variant of variants) {
  if (device.isCuda) device.setKernelPolicy({ conv: variant === 'default' ? 'auto' : variant });
  let chunkMs = 0;
  let chunkTorchMs = 0;
  let chunkFlops = 0;
  for (const [index, shape] of shapes.entries()) {
    if (flags.only && !shape.name.includes(flags.only)) continue;
    const { kernel, ms, flops, floorMs } = await measure(shape, index);
    const baseline = torch.find((r) => r.shape === shape.name);
    chunkMs += shape.count * ms;
    chunkFlops += shape.count * flops;
    if (baseline) chunkTorchMs += shape.count * baseline.torchMs;
    report({
      benchmark: 'vae-conv3d',
      shape: shape.name,
      variant,
      kernel,
      dtype,
      ms: Number(ms.toFixed(4)),
      tflops: Number((flops / (ms / 1e3) / 1e12).toFixed(1)),
      floorMs: Number(floorMs.toFixed(4)),
      fractionOfFloor: Number((floorMs / ms).toFixed(3)),
      torchMs: baseline?.torchMs ?? null,
      ratioToTorch: baseline ? Number((ms / baseline.torchMs).toFixed(3)) : null,
      countPerChunk: shape.count,
      ...(shrink !== 1 ? { shrink } : {}),
      ...env,
    });
  }
  report({
    benchmark: 'vae-conv3d-chunk-total',
    variant,
    what: 'sum over one 17-frame chunk of count x median time (the decoder convolutions only)',
    ms: Number(chunkMs.toFixed(2)),
    tflops: Number((chunkFlops / (chunkMs / 1e3) / 1e12).toFixed(1)),
    floorMs: Number(((chunkFlops / H200.bf16GemmFlops) * 1e3).toFixed(2)),
    torchMs: torch.length ? Number(chunkTorchMs.toFixed(2)) : null,
    ratioToTorch: torch.length ? Number((chunkMs / chunkTorchMs).toFixed(3)) : null,
    ...env,
  });
}
if (device.isCuda) device.setKernelPolicy({ conv: 'auto' });
