// The LoRA gradients of the DiT (lib/training/dit-backward.ts, the tape of lib/training/tape.ts)
// and of the DPO loss (lib/training/dpo-step.ts), CPU, the built-in model (2 blocks, 1 head of 128,
// patch 1), against central differences of the forward itself.
//
// Error analysis, written before the run. L(θ) = Σ dOut·v(θ) over 256 outputs (latents
// [1, 2, 8, 4, 4]), |v| and |dOut| about 1, computed in f32: each v carries a relative error of a
// few 1e-7 (sums of ≤ 512 products through two blocks), so L is off by typically √256·1e-6 ≈ 2e-5.
// The derivative along u (unit-normal entries) is taken by Richardson's extrapolation of central
// differences, D = (4·D(h/2) − D(h)) / 3 with D(h) = (L(θ + h·u) − L(θ − h·u)) / 2h, h = 1e-2:
// its rounding error is about (4/3)·2e-5 / (2·5e-3) ≈ 3e-3, and its truncation error is O(h⁴).
// (A first run with D(h) alone failed by 0.2 to 4 %: its h²·L'''/6 term is not small, because
// h·u moves each entry of the adapter, whose entries are about 0.1, by 10 % of its size; the
// extrapolation removes that term, leaving about (0.1)² of it, 1e-4 of the derivative.)
// Bound: |analytic − D| ≤ 5e-3 + 1e-3·|D|. A wrong backward (a term dropped, a transpose missed)
// is off by the size of the derivative itself, O(0.1..10): far outside it.
// The loss, with β = 5: z = −β/2·(Δe_w − Δe_l), e a mean of 256 squares in f32 (e about 3, off
// by about 1e-6 of it), so z and the loss are off by about 2.5·4·3e-6 = 3e-5 and D by
// (4/3)·3e-5 / 1e-2 ≈ 4e-3: the same bound, 5e-3 + 1e-3·|D|. (β only scales z; a large β puts the
// loss's own curvature into the difference: at β = 500 its slope along u was about 60, a change of
// 0.6 over h, where D(h) and D(h/2) are no longer in the quadratic regime.)
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { HostTensor } from '../../lib/io/safetensors.js';
import { LORA_LINEARS, LoraAdapter, loraLinearShapes } from '../../lib/models/dit/lora.js';
import { type DiTContext, StepVideoDiT } from '../../lib/models/dit/model.js';
import { StepVideo } from '../../lib/pipeline/pipeline.js';
import { Tensor } from '../../lib/tensor.js';
import { type LoraGradients, disposeGradients, ditLoraGradients, forwardWithCheckpoints } from '../../lib/training/dit-backward.js';
import { dpoStep } from '../../lib/training/dpo-step.js';
import { testCacheDir } from '../helpers/pipeline.js';
import { Rng, randn } from '../helpers/random.js';

const SHAPE = [1, 2, 8, 4, 4];
const H = 1e-2;
let sv: StepVideo;
let text: { y: Tensor; clip: Tensor; mask: ArrayLike<number> };

beforeAll(async () => {
  sv = await StepVideo.load({ device: 'cpu', cacheDir: testCacheDir });
  const encoded = await sv.text.encodePrompts(['a red ball rolls across a wooden table']);
  text = { y: encoded.y, clip: encoded.clip, mask: encoded.yMask };
});

afterAll(() => {
  text?.y.dispose();
  text?.clip.dispose();
  sv?.dispose();
});

/** A random adapter on every Linear of every block as host tensors (B non-zero, so every path carries gradient). */
function randomLora(seed: number, rank = 3): Map<string, HostTensor> {
  const rng = new Rng(seed);
  const shapes = loraLinearShapes(sv.dit.config);
  const tensors = new Map<string, HostTensor>();
  for (let i = 0; i < sv.dit.config.numLayers; i++)
    for (const linear of LORA_LINEARS) {
      const [inDim, outDim] = shapes[linear];
      tensors.set(`transformer_blocks.${i}.${linear}.lora_A.weight`, { dtype: 'f32', shape: [rank, inDim], data: randn(rng, rank * inDim, 0.1) });
      tensors.set(`transformer_blocks.${i}.${linear}.lora_B.weight`, { dtype: 'f32', shape: [outDim, rank], data: randn(rng, outDim * rank, 0.1) });
    }
  tensors.set('lora_alpha', { dtype: 'f32', shape: [], data: Float32Array.of(2 * rank) });
  return tensors;
}

/** θ + t·u on the named tensors. */
function moved(base: Map<string, HostTensor>, direction: Map<string, Float32Array>, t: number): Map<string, HostTensor> {
  const out = new Map(base);
  for (const [name, u] of direction) {
    const b = base.get(name)!;
    out.set(name, { ...b, data: Float32Array.from(b.data as Float32Array, (v, i) => v + t * u[i]!) });
  }
  return out;
}

function adapterOf(tensors: Map<string, HostTensor>): LoraAdapter {
  return LoraAdapter.fromTensors(tensors, { config: sv.dit.config, device: sv.dit.device, dtype: 'f32' });
}

/** Unit-normal entries for every LoRA tensor of `base`. */
function randomDirection(rng: Rng, base: Map<string, HostTensor>): Map<string, Float32Array> {
  const names = [...base.keys()].filter((n) => n !== 'lora_alpha');
  return new Map(names.map((n) => [n, randn(rng, (base.get(n)!.data as Float32Array).length)]));
}

/** ⟨gradients, direction⟩ over every named LoRA tensor. */
async function along(grads: LoraGradients, direction: Map<string, Float32Array>): Promise<number> {
  let sum = 0;
  for (const [name, u] of direction) {
    const [, block, linear, kind] = /^transformer_blocks\.(\d+)\.(.+)\.(lora_A|lora_B)\.weight$/.exec(name)!;
    const g = grads.get(`${block}.${linear}`)!;
    sum += await dot(kind === 'lora_A' ? g.a : g.b, u);
  }
  return sum;
}

/** (4·D(h/2) − D(h)) / 3 of the central differences D of f along its argument at 0. */
async function richardson(f: (t: number) => Promise<number>): Promise<number> {
  const central = async (h: number) => ((await f(h)) - (await f(-h))) / (2 * h);
  return (4 * (await central(H / 2)) - (await central(H))) / 3;
}

async function dot(a: Tensor, b: Float32Array): Promise<number> {
  const values = await a.toFloat32();
  let sum = 0;
  for (let i = 0; i < b.length; i++) sum += values[i]! * b[i]!;
  return sum;
}

describe('DiT LoRA gradients (checkpointed backward on the tape)', () => {
  it('match central differences of ⟨dOut, forward⟩ for every adapted Linear of both blocks', async () => {
    const rng = new Rng(7);
    const base = randomLora(11);
    using latents = Tensor.from(randn(rng, 256), SHAPE);
    const dOutHost = randn(rng, 256);
    using dOut = Tensor.from(dOutHost, SHAPE);
    const timestep = [0.62];
    const objective = async (tensors: Map<string, HostTensor>) => {
      using adapter = adapterOf(tensors);
      using context = sv.dit.prepareContext({ ...text, lora: adapter });
      using v = await sv.dit.forward(latents, timestep, context);
      return dot(v, dOutHost);
    };

    using adapter = adapterOf(base);
    using context = sv.dit.prepareContext({ ...text, lora: adapter });
    const { output, inputs } = await forwardWithCheckpoints(sv.dit, latents, timestep, context);
    // The checkpointed forward is the plain forward.
    using plain = await sv.dit.forward(latents, timestep, context);
    expect(Array.from(await output.toFloat32())).toEqual(Array.from(await plain.toFloat32()));
    output.dispose();
    const grads = await ditLoraGradients(sv.dit, latents, timestep, context, inputs, dOut);
    try {
      expect(inputs.every((t) => t.disposed)).toBe(true);
      const failures: string[] = [];
      for (let i = 0; i < sv.dit.config.numLayers; i++)
        for (const linear of LORA_LINEARS) {
          const g = grads.get(`${i}.${linear}`)!;
          const names = [`transformer_blocks.${i}.${linear}.lora_A.weight`, `transformer_blocks.${i}.${linear}.lora_B.weight`];
          const direction = new Map(names.map((n) => [n, randn(rng, (base.get(n)!.data as Float32Array).length)]));
          const analytic = (await dot(g.a, direction.get(names[0]!)!)) + (await dot(g.b, direction.get(names[1]!)!));
          const difference = await richardson((t) => objective(moved(base, direction, t)));
          const bound = 5e-3 + 1e-3 * Math.abs(difference);
          if (!(Math.abs(analytic - difference) <= bound)) failures.push(`block ${i} ${linear}: analytic ${analytic}, difference ${difference}, bound ${bound}`);
          // Every path carries a gradient of the derivative's size: the check is not vacuous.
          expect(Math.abs(difference)).toBeGreaterThan(10 * bound);
        }
      expect(failures).toEqual([]);
    } finally {
      disposeGradients(grads);
    }
  }, 120_000);

  it('on FP8 base weights too (the backward multiplies by the dequantized weight): one direction over every tensor', async () => {
    using fp8 = await StepVideoDiT.load(path.join(sv.modelDir, 'transformer'), { device: 'cpu', weights: 'fp8' });
    const rng = new Rng(71);
    const base = randomLora(13);
    using latents = Tensor.from(randn(rng, 256), SHAPE);
    const dOutHost = randn(rng, 256);
    using dOut = Tensor.from(dOutHost, SHAPE);
    const objective = async (tensors: Map<string, HostTensor>) => {
      using adapter = LoraAdapter.fromTensors(tensors, { config: fp8.config, device: fp8.device, dtype: 'f32' });
      using context = fp8.prepareContext({ ...text, lora: adapter });
      using v = await fp8.forward(latents, [0.4], context);
      return dot(v, dOutHost);
    };
    using adapter = LoraAdapter.fromTensors(base, { config: fp8.config, device: fp8.device, dtype: 'f32' });
    using context = fp8.prepareContext({ ...text, lora: adapter });
    const { output, inputs } = await forwardWithCheckpoints(fp8, latents, [0.4], context);
    output.dispose();
    const grads = await ditLoraGradients(fp8, latents, [0.4], context, inputs, dOut);
    try {
      const direction = randomDirection(rng, base);
      const analytic = await along(grads, direction);
      const difference = await richardson((t) => objective(moved(base, direction, t)));
      expect(Math.abs(analytic - difference)).toBeLessThanOrEqual(5e-3 + 1e-3 * Math.abs(difference));
      expect(Math.abs(difference)).toBeGreaterThan(1);
    } finally {
      disposeGradients(grads);
    }
  }, 120_000);

  it('reach only the Linears the adapter has (a subset), with an f32 gradient per tensor', async () => {
    const all = randomLora(5);
    const subset = new Map([...all].filter(([n]) => n === 'lora_alpha' || /\.(attn2\.wkv|ff\.net\.2)\./.test(n)));
    using adapter = adapterOf(subset);
    using context = sv.dit.prepareContext({ ...text, lora: adapter });
    using latents = Tensor.from(randn(new Rng(3), 256), SHAPE);
    using dOut = Tensor.from(randn(new Rng(4), 256), SHAPE);
    const { output, inputs } = await forwardWithCheckpoints(sv.dit, latents, [0.3], context);
    output.dispose();
    const grads = await ditLoraGradients(sv.dit, latents, [0.3], context, inputs, dOut);
    try {
      expect([...grads.keys()].sort()).toEqual(['0.attn2.wkv', '0.ff.net.2', '1.attn2.wkv', '1.ff.net.2']);
      for (const g of grads.values()) expect([g.a.dtype, g.b.dtype]).toEqual(['f32', 'f32']);
    } finally {
      disposeGradients(grads);
    }
  }, 60_000);
});

describe('DPO step', () => {
  async function stepLoss(tensors: Map<string, HostTensor>, batch: { chosen: Tensor; rejected: Tensor; noise: Tensor }, gradients: boolean) {
    using adapter = adapterOf(tensors);
    return await dpoStep(sv.dit, adapter, { ...batch, sigma: [0.55], text }, { beta: 5, gradients });
  }

  it("the loss's gradient matches central differences; at B = 0 the trained model is the reference (loss log 2)", async () => {
    const rng = new Rng(21);
    using chosen = Tensor.from(randn(rng, 256), SHAPE);
    using rejected = Tensor.from(randn(rng, 256, 1, 0.5), SHAPE);
    using noise = Tensor.from(randn(rng, 256), SHAPE);
    const batch = { chosen, rejected, noise };
    const base = randomLora(31, 2);
    // Scale B down so z stays in the sigmoid's informative range.
    for (const [name, t] of base) if (name.includes('lora_B')) base.set(name, { ...t, data: (t.data as Float32Array).map((v) => v * 0.1) });
    const result = await stepLoss(base, batch, true);
    try {
      const direction = randomDirection(rng, base);
      const analytic = await along(result.grads!, direction);
      const difference = await richardson(async (t) => (await stepLoss(moved(base, direction, t), batch, false)).loss.loss);
      expect(Math.abs(analytic - difference)).toBeLessThanOrEqual(5e-3 + 1e-3 * Math.abs(difference));
      expect(Math.abs(difference)).toBeGreaterThan(0.05);
    } finally {
      disposeGradients(result.grads!);
    }

    const zeroB = new Map([...base].map(([n, t]) => [n, n.includes('lora_B') ? { ...t, data: new Float32Array((t.data as Float32Array).length) } : t]));
    const start = await stepLoss(zeroB, batch, false);
    expect(start.errors.chosen).toEqual(start.errors.chosenRef);
    expect(start.errors.rejected).toEqual(start.errors.rejectedRef);
    expect(start.loss.loss).toBeCloseTo(Math.log(2), 12);
  }, 120_000);

  it('refuses mismatched inputs with typed errors naming the tensor', async () => {
    using adapter = adapterOf(randomLora(1));
    using a = Tensor.from(new Float32Array(256).fill(0.5), SHAPE);
    using b = Tensor.from(new Float32Array(128).fill(0.5), [1, 1, 8, 4, 4]);
    await expect(dpoStep(sv.dit, adapter, { chosen: a, rejected: b, noise: a, sigma: [0.5], text }, { beta: 1 })).rejects.toMatchObject({ code: 'ERR_SHAPE', tensor: 'rejected' });
    await expect(dpoStep(sv.dit, adapter, { chosen: a, rejected: a, noise: a, sigma: [1], text }, { beta: 1 })).rejects.toMatchObject({ code: 'ERR_ARGUMENT', tensor: 'sigma' });
    await expect(dpoStep(sv.dit, adapter, { chosen: a, rejected: a, noise: a, sigma: [0.5], text }, { beta: 0 })).rejects.toMatchObject({ code: 'ERR_ARGUMENT' });
    const noLora = sv.dit.prepareContext(text) as DiTContext;
    try {
      await expect(ditLoraGradients(sv.dit, a, [0.5], noLora, [], a)).rejects.toMatchObject({ code: 'ERR_ARGUMENT' });
    } finally {
      noLora.dispose();
    }
  }, 60_000);
});
