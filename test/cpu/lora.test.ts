// LoRA adapters on the DiT (lib/models/dit/lora.ts), CPU, the built-in model: applied on the fly,
// they give what the merged weights W + s·B·A give; a zero B changes nothing; names in the PEFT and
// diffusers spellings load, anything else is a typed error naming the tensor and file; generate
// and `stepvideo generate --lora` apply one.
//
// Tolerance, before the run: the merged model rounds W' = W + s·B·A to f32 once; the adapter path
// computes x·Wᵀ + s·(x·Aᵀ)·Bᵀ in f32. Each adapted Linear's outputs then differ by a few ulp of
// their magnitude (sums of 128 to 512 products: about 1e-6 relative), and two blocks with
// attention amplify that by at most about 10: the velocities agree to 1e-4 of their largest value.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { bf16ArrayToF32 } from '../../lib/dtype.js';
import { StepVideoError } from '../../lib/errors.js';
import { type HostTensor, readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';
import { LORA_LINEARS, LoraAdapter, loraLinearShapes, parseLoraSpec } from '../../lib/models/dit/lora.js';
import { StepVideoDiT } from '../../lib/models/dit/model.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { Tensor } from '../../lib/tensor.js';
import { runCli } from '../helpers/cli.js';
import { testCacheDir } from '../helpers/pipeline.js';
import { Rng, randn } from '../helpers/random.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'stepvideo-lora-'));
let sv: StepVideo;
let transformerDir: string;

beforeAll(async () => {
  sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
  transformerDir = path.join(sv.modelDir, 'transformer');
});

afterAll(() => {
  sv?.dispose();
  rmSync(work, { recursive: true, force: true });
});

const f32 = (t: HostTensor): Float32Array => (t.dtype === 'bf16' ? bf16ArrayToF32(t.data as Uint16Array) : (t.data as Float32Array));

/** A random adapter of `rank` on every adaptable Linear of every block, as host tensors (PEFT names with a prefix). */
function randomLora(rank: number, alpha: number, seed: number, zeroB = false): Map<string, HostTensor> {
  const rng = new Rng(seed);
  const shapes = loraLinearShapes(sv.dit.config);
  const tensors = new Map<string, HostTensor>();
  for (let i = 0; i < sv.dit.config.numLayers; i++) {
    for (const linear of LORA_LINEARS) {
      const [inDim, outDim] = shapes[linear];
      tensors.set(`base_model.model.transformer_blocks.${i}.${linear}.lora_A.weight`, { dtype: 'f32', shape: [rank, inDim], data: randn(rng, rank * inDim, 0.1) });
      tensors.set(`base_model.model.transformer_blocks.${i}.${linear}.lora_B.weight`, { dtype: 'f32', shape: [outDim, rank], data: zeroB ? new Float32Array(outDim * rank) : randn(rng, outDim * rank, 0.1) });
    }
  }
  tensors.set('lora_alpha', { dtype: 'f32', shape: [], data: Float32Array.of(alpha) });
  return tensors;
}

/** The transformer folder with every adapted weight replaced by W + s·B·A (float64, stored f32). */
async function mergedTransformer(lora: Map<string, HostTensor>, scale: number): Promise<string> {
  const dir = path.join(work, `merged-${Math.random().toString(36).slice(2)}`);
  mkdirSync(dir);
  for (const name of readdirSync(transformerDir)) {
    if (!name.endsWith('.safetensors')) {
      writeFileSync(path.join(dir, name), readFileSync(path.join(transformerDir, name)));
      continue;
    }
    const tensors = await readSafetensors(path.join(transformerDir, name));
    const out: Record<string, HostTensor> = {};
    for (const [key, tensor] of tensors) {
      const match = /^transformer_blocks\.(\d+)\.(.+)\.weight$/.exec(key);
      const a = match ? lora.get(`base_model.model.transformer_blocks.${match[1]}.${match[2]}.lora_A.weight`) : undefined;
      if (!a) {
        out[key] = tensor;
        continue;
      }
      const b = lora.get(`base_model.model.transformer_blocks.${match![1]}.${match![2]}.lora_B.weight`)!;
      const [outDim, inDim] = tensor.shape as [number, number];
      const r = a.shape[0]!;
      const w = f32(tensor);
      const merged = new Float32Array(outDim * inDim);
      const A = a.data as Float32Array;
      const B = b.data as Float32Array;
      for (let o = 0; o < outDim; o++) {
        for (let c = 0; c < inDim; c++) {
          let sum = 0;
          for (let k = 0; k < r; k++) sum += B[o * r + k]! * A[k * inDim + c]!;
          merged[o * inDim + c] = w[o * inDim + c]! + scale * sum;
        }
      }
      out[key] = { dtype: 'f32', shape: [outDim, inDim], data: merged };
    }
    await writeSafetensors(path.join(dir, name), out);
  }
  return dir;
}

/** One forward of `dit` on fixed random inputs, with an optional adapter. */
async function velocity(dit: StepVideoDiT, lora?: LoraAdapter): Promise<Float32Array> {
  const rng = new Rng(11);
  const [c0, c1] = dit.config.captionChannels;
  using latents = Tensor.from(randn(rng, 2 * 3 * dit.config.inChannels * 4 * 4), [2, 3, dit.config.inChannels, 4, 4], { device: 'cpu' });
  using y = Tensor.from(randn(rng, 2 * 6 * c0), [2, 6, c0], { device: 'cpu' });
  using clip = Tensor.from(randn(rng, 2 * 3 * c1), [2, 3, c1], { device: 'cpu' });
  const mask = [1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0];
  using context = dit.prepareContext({ y, clip, mask, ...(lora ? { lora } : {}) });
  using out = await dit.forward(latents, [0.7, 0.3], context);
  return out.toFloat32();
}

describe('LoRA adapters on the DiT', () => {
  it('applied on the fly equal the merged weights W + (alpha/r)·s·B·A', async () => {
    const tensors = randomLora(4, 8, 1);
    const scale = 0.75;
    using adapter = LoraAdapter.fromTensors(tensors, { config: sv.dit.config, device: sv.dit.device, dtype: 'f32', scale });
    expect(adapter.rank).toBe(4);
    expect(adapter.targets).toHaveLength(LORA_LINEARS.length * sv.dit.config.numLayers);
    const merged = await StepVideoDiT.load(await mergedTransformer(tensors, (8 / 4) * scale), { device: 'cpu', dtype: 'f32' });
    try {
      const onTheFly = await velocity(sv.dit, adapter);
      const reference = await velocity(merged);
      const base = await velocity(sv.dit);
      const largest = Math.max(...reference.map(Math.abs));
      const worst = Math.max(...reference.map((v, i) => Math.abs(v - onTheFly[i]!)));
      expect(worst / largest, 'adapter vs merged').toBeLessThan(1e-4);
      // And the adapter does something: the base model differs by far more.
      expect(Math.max(...reference.map((v, i) => Math.abs(v - base[i]!))) / largest).toBeGreaterThan(1e-2);
    } finally {
      merged.dispose();
    }
  });

  it('with B = 0 changes nothing, bit for bit', async () => {
    using adapter = LoraAdapter.fromTensors(randomLora(2, 2, 3, true), { config: sv.dit.config, device: sv.dit.device, dtype: 'f32' });
    const withZero = await velocity(sv.dit, adapter);
    const base = await velocity(sv.dit);
    expect(Buffer.from(withZero.buffer).equals(Buffer.from(base.buffer))).toBe(true);
  });

  it('loads the PEFT and diffusers spellings, and names what is wrong', async () => {
    const shapes = loraLinearShapes(sv.dit.config);
    const [inDim, outDim] = shapes['attn2.wq'];
    const pair = (prefix: string, suffix = '') => new Map<string, HostTensor>([
      [`${prefix}transformer_blocks.1.attn2.wq.lora_A${suffix}.weight`, { dtype: 'f32', shape: [2, inDim], data: new Float32Array(2 * inDim).fill(0.01) }],
      [`${prefix}transformer_blocks.1.attn2.wq.lora_B${suffix}.weight`, { dtype: 'f32', shape: [outDim, 2], data: new Float32Array(outDim * 2).fill(0.01) }],
      [`${prefix}transformer_blocks.1.attn2.wq.alpha`, { dtype: 'f32', shape: [], data: Float32Array.of(4) }],
    ]);
    const options = { config: sv.dit.config, device: sv.dit.device, dtype: 'f32' as const };
    for (const [prefix, suffix] of [['', ''], ['transformer.', ''], ['base_model.model.', '.default'], ['diffusion_model.', '']]) {
      using adapter = LoraAdapter.fromTensors(pair(prefix!, suffix), options);
      expect(adapter.targets).toEqual(['1.attn2.wq']);
      expect(adapter.get(1, 'attn2.wq')!.scale).toBe(2);
    }
    const file = path.join(work, 'bad.safetensors');
    const cases: [Map<string, HostTensor>, RegExp][] = [
      [new Map([['transformer_blocks.0.norm1.lora_A.weight', { dtype: 'f32', shape: [1, 1], data: new Float32Array(1) }]]), /unsupported Linear 'norm1'/],
      [new Map([['something.else', { dtype: 'f32', shape: [1], data: new Float32Array(1) }]]), /unexpected tensor/],
      [new Map([...pair('')].slice(0, 1)), /needs both lora_A and lora_B/],
      [new Map([[`transformer_blocks.1.attn2.wq.lora_A.weight`, { dtype: 'f32', shape: [2, inDim + 1], data: new Float32Array(2 * (inDim + 1)) }], [`transformer_blocks.1.attn2.wq.lora_B.weight`, { dtype: 'f32', shape: [outDim, 2], data: new Float32Array(outDim * 2) }]]), /wrong shapes/],
      [new Map([[`transformer_blocks.9.attn2.wq.lora_A.weight`, { dtype: 'f32', shape: [2, inDim], data: new Float32Array(2 * inDim) }]]), /block 9/],
      [new Map(), /no adapter/],
    ];
    for (const [tensors, pattern] of cases) {
      await writeSafetensors(file, Object.fromEntries(tensors));
      const error = await LoraAdapter.load(file, options).then(() => undefined, (e: unknown) => e);
      expect(error, String(pattern)).toBeInstanceOf(StepVideoError);
      expect((error as Error).message).toMatch(pattern);
      expect((error as StepVideoError).file ?? '').toContain('bad.safetensors');
    }
    expect(parseLoraSpec('a/b.safetensors:0.5')).toEqual({ file: 'a/b.safetensors', scale: 0.5 });
    expect(parseLoraSpec('c:/x.safetensors')).toEqual({ file: 'c:/x.safetensors', scale: 1 });
  });

  it('generate applies a job’s adapter, or the pipeline’s, and `stepvideo generate --lora` does too', async () => {
    const file = path.join(work, 'style.safetensors');
    await writeSafetensors(file, Object.fromEntries(randomLora(4, 4, 5)));
    const job = { prompt: 'a cat', frames: 17, height: 32, width: 32, steps: 3, seed: 7 };
    const read = async (lora?: string | null) => {
      const video = await sv.generate({ ...job, ...(lora !== undefined ? { lora } : {}) });
      const values = await video.latents.toFloat32();
      video.dispose();
      return values;
    };
    const plain = await read();
    const styled = await read(file);
    const half = await read(`${file}:0.5`);
    expect(Buffer.from(styled.buffer).equals(Buffer.from(plain.buffer))).toBe(false);
    expect(Buffer.from(half.buffer).equals(Buffer.from(styled.buffer))).toBe(false);
    expect(Buffer.from((await read(file)).buffer).equals(Buffer.from(styled.buffer)), 'the same adapter gives the same video').toBe(true);

    const withDefault = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir, lora: file });
    try {
      const latentsOf = async (lora?: null) => {
        const video = await withDefault.generate({ ...job, ...(lora === null ? { lora } : {}) });
        const values = await video.latents.toFloat32();
        video.dispose();
        return Buffer.from(values.buffer);
      };
      expect((await latentsOf()).equals(Buffer.from(styled.buffer)), 'the pipeline’s adapter').toBe(true);
      expect((await latentsOf(null)).equals(Buffer.from(plain.buffer)), 'lora: null turns it off').toBe(true);
    } finally {
      withDefault.dispose();
    }

    const out = path.join(work, 'cli.y4m');
    const ok = await runCli(['generate', 'a cat', '--device', 'cpu', '--frames', '17', '--height', '32', '--width', '32', '--steps', '3', '--seed', '7', '--lora', `${file}:0.5`, '--out', out], { env: { STEPVIDEO_CACHE_DIR: testCacheDir } });
    expect(ok.code, ok.stderr).toBe(0);
    const missing = await runCli(['generate', 'a cat', '--device', 'cpu', '--steps', '1', '--lora', path.join(work, 'none.safetensors'), '--out', out], { env: { STEPVIDEO_CACHE_DIR: testCacheDir } });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ERR_IO.*LoRA.*none\.safetensors/);
  });
});
