// Full VAE decode at 544x992 (released widths, random bf16 weights made on the GPU), 17 and 204
// frames: time, time per 17-frame chunk, peak GPU memory (tensor bytes, as torch.cuda.max_memory_allocated
// counts them), and the ratio to decode_torch.py (a PyTorch decoder written from the spec, same run,
// --torch names its result file) and to the official figures (1.18 s per chunk, 14.2 s for 204
// frames, 23.1 GiB peak). Chunks are streamed (decode with onChunk), as the pipeline consumes them.
// Runs with the default conv kernels and with the opt-in Hopper one (kernel policy conv = wgmma).
//   node benchmarks/vae/decode.mjs [--frames=17,204] [--runs=2] [--torch=FILE] [--variants=default,wgmma]
// (--device=cpu --height=64 --width=64 --frames=17 --runs=1 checks the script itself, in f32.)
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { H200, environment, library, parseFlags, report, root } from '../lib/harness.mjs';

const flags = parseFlags();
const sv = await library();
const vaeModule = await import(path.join(root, 'dist', 'models', 'vae', 'index.js'));
const { RELEASED_VAE_CONFIG, VideoVAE, randomVaeWeights } = vaeModule;
const device = sv.getDevice(flags.device ?? 'cuda');
const dtype = device.isCuda ? 'bf16' : 'f32';
const [height, width] = [Number(flags.height ?? 544), Number(flags.width ?? 992)];
const frameCounts = String(flags.frames ?? '17,204').split(',').map(Number);
const runs = Number(flags.runs ?? 2);
// A missing file means the baseline failed: ours is still measured, its ratio left null.
const torch = flags.torch && existsSync(flags.torch) ? JSON.parse(readFileSync(flags.torch, 'utf8')) : [];
const official = { msPerChunk: 1180, ms204: 14200, peakGiB: 23.1 };
const env = environment(device);
const variants = String(flags.variants ?? (device.isCuda ? 'default,wgmma' : 'default')).split(',');

// FLOPs of one chunk: the convolutions of shapes.json (scaled to this size) and the causal attention.
const { shapes } = JSON.parse(readFileSync(fileURLToPath(new URL('./shapes.json', import.meta.url)), 'utf8'));
const area = (height * width) / (544 * 992);
let chunkFlops = 0;
for (const s of shapes) {
  const [t, h, w, cin] = s.input;
  const [kt, kh, kw] = s.kernel;
  const [ut, us] = s.upsample;
  const outputs = t * ut * h * us * w * us * area;
  chunkFlops += s.count * 2 * outputs * s.cout * cin * kt * kh * kw;
}
const tokens = 5 * (height / 8) * (width / 8);
chunkFlops += 2 * tokens * tokens * 512;  // causal QK^T and PV: 4·N²·C / 2
const chunkFloorMs = (chunkFlops / H200.bf16GemmFlops) * 1e3;

const started = performance.now();
const source = randomVaeWeights(RELEASED_VAE_CONFIG, ['decoder'], { device, dtype, seed: 3 });
const vae = VideoVAE.fromWeights(RELEASED_VAE_CONFIG, source, { device, dtype, parts: ['decoder'] });
await device.synchronize();
const weightBytes = device.memory().bytesInUse;
console.error(`vae decode: random released decoder made in ${((performance.now() - started) / 1000).toFixed(1)} s (${(weightBytes / 2 ** 30).toFixed(2)} GiB)`);

for (const variant of variants) {
  if (device.isCuda) device.setKernelPolicy({ conv: variant === 'default' ? 'auto' : variant });
  for (const frames of frameCounts) await measure(frames, variant);
}
if (device.isCuda) device.setKernelPolicy({ conv: 'auto' });
vae.dispose();

async function measure(frames, variant) {
  const chunks = Math.floor(frames / 17);
  const latents = sv.kernels.randomNormal([1, chunks * 3, 64, height / 16, width / 16], { seed: 9, dtype, device });
  // Warm-up: one chunk (allocator pool, GEMM plans).
  const first = sv.ops.slice(latents, 1, 0, 3);
  await vae.decode(first, { onChunk: () => {} });
  first.dispose();
  const samples = [];
  let peak = 0;
  for (let run = 0; run < runs; run++) {
    await device.synchronize();
    device.resetPeakMemory();
    const start = performance.now();
    let delivered = 0;
    await vae.decode(latents, { onChunk: () => void delivered++ });
    await device.synchronize();
    samples.push(performance.now() - start);
    peak = Math.max(peak, device.memory().peakBytes);
    if (delivered !== chunks) throw new Error(`expected ${chunks} chunks, got ${delivered}`);
  }
  latents.dispose();
  samples.sort((a, b) => a - b);
  const ms = samples[Math.floor(samples.length / 2)];
  const baseline = torch.find((r) => r.frames === frames && r.height === height && r.width === width);
  const officialMs = frames === 204 ? official.ms204 : official.msPerChunk * chunks;
  report({
    benchmark: 'vae-decode',
    variant,
    frames,
    height,
    width,
    dtype,
    ms: Number(ms.toFixed(1)),
    msPerChunk: Number((ms / chunks).toFixed(1)),
    tflops: Number(((chunks * chunkFlops) / (ms / 1e3) / 1e12).toFixed(1)),
    floorMs: Number((chunks * chunkFloorMs).toFixed(1)),
    peakGiB: Number((peak / 2 ** 30).toFixed(2)),
    weightsGiB: Number((weightBytes / 2 ** 30).toFixed(3)),
    torchMs: baseline?.torchMs ?? null,
    ratioToTorch: baseline ? Number((ms / baseline.torchMs).toFixed(3)) : null,
    torchPeakGiB: baseline?.torchPeakGiB ?? null,
    officialMs,
    ratioToOfficial: Number((ms / officialMs).toFixed(3)),
    officialPeakGiB: official.peakGiB,
    ...env,
  });
}
