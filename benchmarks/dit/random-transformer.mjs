// Writes a transformer/ folder in the released layout (config.json, one safetensors shard per
// block plus one for the global tensors, and the index) with the released widths, `layers` blocks
// and random bf16 weights, so a benchmark can load the model through StepVideoDiT.load exactly as
// the released checkpoint would be loaded. No download: the values come from a seeded generator
// (one pool of normal-ish values per kind of tensor, each tensor a window of its pool).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { RELEASED_DIT_CONFIG } from '../../dist/models/dit/config.js';

/** The released config.json with `layers` blocks. */
export function releasedConfig(layers) {
  return { _class_name: 'StepVideoModel', ...RELEASED_DIT_CONFIG, num_layers: layers };
}

function bf16Bits(value) {
  const f = new Float32Array([value]);
  const u = new Uint32Array(f.buffer)[0];
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** `count` bf16 values ~ mean + std·N(0, 1) (Irwin-Hall of 4 uniforms), from a xorshift32 seed. */
export function randomBf16(count, { mean = 0, std = 1, seed = 1 } = {}) {
  const out = new Uint16Array(count);
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  // A table of 65536 values drawn once, indexed by the generator: fast and still irregular.
  const table = new Uint16Array(65536);
  for (let i = 0; i < table.length; i++) table[i] = bf16Bits(mean + std * (next() + next() + next() + next() - 2) * Math.sqrt(3));
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = table[s & 0xffff];
  }
  return out;
}

/**
 * Writes the folder; `spec` is the library's ditWeightSpec(config) (name -> shape). Returns the
 * folder and the number of weight bytes written.
 */
export async function writeRandomTransformer(dir, layers, { ditWeightSpec, parseDiTConfig, writeSafetensors }) {
  mkdirSync(dir, { recursive: true });
  const config = releasedConfig(layers);
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 1));
  const spec = ditWeightSpec(parseDiTConfig(config));
  let largest = 0;
  for (const shape of spec.values()) largest = Math.max(largest, shape.reduce((a, b) => a * b, 1));
  const pools = {
    linear: randomBf16(largest + 65536, { std: 1 / Math.sqrt(6144), seed: 11 }),
    norm: randomBf16(65536 + 6144, { mean: 1, std: 0.1, seed: 12 }),
    bias: randomBf16(65536 + 36864, { std: 0.02, seed: 13 }),
  };
  const window = (pool, count, index) => {
    const offset = (index * 7919) % (pool.length - count + 1);
    return pool.subarray(offset, offset + count);
  };
  const shards = new Map(); // file -> {name: tensor}
  let bytes = 0;
  let index = 0;
  for (const [name, shape] of spec) {
    const count = shape.reduce((a, b) => a * b, 1);
    const kind = /(norm1|norm2|q_norm|k_norm)\.weight$/.test(name) ? 'norm' : name.endsWith('.bias') ? 'bias' : 'linear';
    const block = /^transformer_blocks\.(\d+)\./.exec(name);
    const file = `diffusion_pytorch_model-${block ? String(Number(block[1]) + 1).padStart(5, '0') : '00000'}.safetensors`;
    if (!shards.has(file)) shards.set(file, {});
    shards.get(file)[name] = { dtype: 'bf16', shape, data: window(pools[kind], count, index++) };
    bytes += count * 2;
  }
  const weightMap = {};
  for (const [file, tensors] of shards) {
    await writeSafetensors(path.join(dir, file), tensors);
    for (const name of Object.keys(tensors)) weightMap[name] = file;
  }
  writeFileSync(path.join(dir, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: String(bytes) }, weight_map: weightMap }));
  return { dir, bytes };
}

/**
 * The shapes of the official 544x992x204 run with CFG (--frames/--height/--width override the latent
 * grid for quick checks): batch 2, 64 latent channels, D = 6144, 48 heads of 128, text 320 + 77 tokens.
 */
export function officialRunShapes(flags) {
  const [B, F, C, H, W] = [2, Number(flags.frames ?? 36), 64, Number(flags.height ?? 34), Number(flags.width ?? 62)];
  return { B, F, C, H, W, N: F * H * W, D: 6144, heads: 48, headDim: 128, llmTokens: 320, clipTokens: 77 };
}

/** A tensor of uniform values with unit variance (a seeded LCG), in `dtype` on `device`. */
export function randomTensor(Tensor, shape, seed, dtype, device) {
  const count = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(count);
  let s = seed;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = ((s / 4294967296) * 2 - 1) * Math.sqrt(3);
  }
  return Tensor.from(data, shape, { dtype, device });
}
