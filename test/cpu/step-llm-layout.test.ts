// Step-LLM with grouped-query attention (4 heads, 2 KV groups) against a float64 reference written
// from the spec (§5.1) with plain loops. The golden model has a single KV group, where the per-group
// [k | v] layout of wqkv cannot be told apart from [K_all ; V_all]; this test can.
import { describe, expect, it } from 'vitest';

import { Device } from '../../lib/device.js';
import { ConfigJson } from '../../lib/models/json-config.js';
import { parseStepLlmConfig, stepLlmWeightSpec } from '../../lib/models/step-llm/config.js';
import { StepLlm } from '../../lib/models/step-llm/index.js';
import { randomWeights } from '../../lib/models/weight-source.js';
import { alibiSlope } from '../cases/attention.js';
import { expectRelErr } from '../helpers/compare.js';

const config = parseStepLlmConfig(
  ConfigJson.from({ hidden_size: 64, num_attention_heads: 4, num_attention_groups: 2, num_layers: 2, ffn_hidden_size: 200, layernorm_epsilon: 1e-5, padded_vocab_size: 50 }),
);

type Get = (name: string) => Float32Array;

/** float64 Step1Model forward, [B, S] ids → [B, S, D]. */
function stepLlmReference(w: Get, ids: Int32Array, B: number, S: number): Float64Array {
  const { hiddenSize: D, numHeads: H, numGroups: G, headDim: hd, ffnDim: F, eps } = config;
  const table = w('tok_embeddings.word_embeddings.weight');
  let x = new Float64Array(B * S * D);
  for (let t = 0; t < B * S; t++) for (let j = 0; j < D; j++) x[t * D + j] = table[ids[t]! * D + j]!;
  const rms = (v: Float64Array, weight: Float32Array) => {
    const out = new Float64Array(v.length);
    for (let t = 0; t < v.length / D; t++) {
      let ss = 0;
      for (let j = 0; j < D; j++) ss += v[t * D + j]! ** 2;
      const inv = 1 / Math.sqrt(ss / D + eps);
      for (let j = 0; j < D; j++) out[t * D + j] = v[t * D + j]! * inv * weight[j]!;
    }
    return out;
  };
  // y[t, r] = Σ_j v[t, j] · W[r, j] for W [rows, cols]
  const project = (v: Float64Array, W: Float32Array, rows: number, cols: number) => {
    const out = new Float64Array((v.length / cols) * rows);
    for (let t = 0; t < v.length / cols; t++)
      for (let r = 0; r < rows; r++) {
        let acc = 0;
        for (let j = 0; j < cols; j++) acc += v[t * cols + j]! * W[r * cols + j]!;
        out[t * rows + r] = acc;
      }
    return out;
  };
  const width = D + 2 * hd * G;
  for (let l = 0; l < config.numLayers; l++) {
    const p = `transformer.layers.${l}.`;
    const qkv = project(rms(x, w(`${p}attention_norm.weight`)), w(`${p}attention.wqkv.weight`), width, D);
    const merged = new Float64Array(B * S * D);
    for (let b = 0; b < B; b++)
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / G)); // repeat_interleave: consecutive heads share a group
        const q = (i: number, d: number) => qkv[(b * S + i) * width + h * hd + d]!;
        const k = (j: number, d: number) => qkv[(b * S + j) * width + D + g * 2 * hd + d]!;
        const v = (j: number, d: number) => qkv[(b * S + j) * width + D + g * 2 * hd + hd + d]!;
        for (let i = 0; i < S; i++) {
          const logits = Array.from({ length: i + 1 }, (_, j) => {
            let dot = 0;
            for (let d = 0; d < hd; d++) dot += q(i, d) * k(j, d);
            return dot / Math.sqrt(hd) - alibiSlope(h, H) * Math.sqrt(i - j);
          });
          const top = Math.max(...logits);
          const weights = logits.map((s) => Math.exp(s - top));
          const total = weights.reduce((a, c) => a + c, 0);
          for (let d = 0; d < hd; d++) merged[(b * S + i) * D + h * hd + d] = weights.reduce((a, c, j) => a + c * v(j, d), 0) / total;
        }
      }
    const attn = project(merged, w(`${p}attention.wo.weight`), D, D);
    const h1 = x.map((val, i) => val + attn[i]!);
    const up = project(rms(h1, w(`${p}ffn_norm.weight`)), w(`${p}feed_forward.w1.weight`), 2 * F, D);
    const gated = new Float64Array(B * S * F);
    for (let t = 0; t < B * S; t++)
      for (let j = 0; j < F; j++) {
        const gate = up[t * 2 * F + j]!;
        gated[t * F + j] = (gate / (1 + Math.exp(-gate))) * up[t * 2 * F + F + j]!;
      }
    const ffn = project(gated, w(`${p}feed_forward.w2.weight`), D, F);
    x = h1.map((val, i) => val + ffn[i]!);
  }
  return x;
}

describe('Step-LLM layout with grouped-query attention (CPU, float32)', () => {
  it('matches a float64 reference written from the spec: 4 heads, 2 KV groups, SwiGLU halves', async () => {
    const baseline = Device.cpu.memory().bytesInUse;
    const spec = stepLlmWeightSpec(config);
    const weights = randomWeights(spec, { device: Device.cpu, dtype: 'f32', seed: 7 });
    const host = new Map<string, Float32Array>();
    for (const name of spec.keys()) host.set(name, await weights.get(name).toFloat32());
    const [B, S] = [2, 9];
    const ids = Int32Array.from({ length: B * S }, (_, i) => (i * 17 + 3) % 50);
    {
      using model = new StepLlm(config, weights, Device.cpu, 'f32');
      using y = await model.forward(ids, [B, S]);
      expectRelErr(await y.toFloat32(), stepLlmReference((n) => host.get(n)!, ids, B, S), 1e-5, 'GQA Step-LLM y');
    }
    expect(Device.cpu.memory().bytesInUse).toBe(baseline);
  });

  it('refuses weights of the wrong shape or dtype for the config', () => {
    const spec = new Map(stepLlmWeightSpec(config));
    spec.set('transformer.layers.1.attention.wqkv.weight', [64 + 2 * 16 * 4, 64]);
    using wrongShape = randomWeights(spec, { device: Device.cpu, dtype: 'f32' });
    expect(() => new StepLlm(config, wrongShape, Device.cpu, 'f32')).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', tensor: 'transformer.layers.1.attention.wqkv.weight' }));
    using wrongDType = randomWeights(stepLlmWeightSpec(config), { device: Device.cpu, dtype: 'bf16' });
    expect(() => new StepLlm(config, wrongDType, Device.cpu, 'f32')).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', message: expect.stringContaining('bf16') }));
  });
});
