// Text encoders on the GPU: time per encode of Step-LLM and Hunyuan-CLIP for 2 prompts (320 / 77
// tokens, as the caption server runs them), and the attention kernel on the same shapes, each
// against a PyTorch implementation of the same math timed in the same run (text_torch.py).
// One JSON line per result: ms, achieved TFLOP/s, the floor (FLOPs and bytes over the measured
// H200 ceilings), the ratio to the floor and to PyTorch.
//
// Step-LLM's head, group, layer and FFN counts are not published (spec §5.1): this benchmark
// ASSUMES 48 heads, 4 KV groups, 48 layers, ffn_hidden_size 16384 at the certain hidden size 6144
// (see README.md). Weights are random, made on the spot; all layers share one set of weights (the
// kernels and their memory traffic are those of distinct weights: one layer's 0.77 GB of bf16
// weights is far larger than the L2 cache), and the embedding table has 8192 rows (a lookup of
// 640 rows costs the same whatever the table's height).
//   node benchmarks/text/encode.mjs [--iterations=5] [--no-baseline] [--python=python3]
//   node benchmarks/text/encode.mjs --device=cpu --quick --no-baseline   (a check of the script)
import { spawnSync } from 'node:child_process';
import path from 'node:path';

import { H200, environment, library, parseFlags, report, root, time } from '../lib/harness.mjs';

const flags = parseFlags();
const iterations = Number(flags.iterations ?? 5);
const quick = Boolean(flags.quick);
const sv = await library();
const device = sv.getDevice(flags.device ?? 'cuda');
const onGpu = device.isCuda;
const models = (name) => import(path.join(root, 'dist', 'models', name));
const { StepLlm } = await models('step-llm/index.js');
const { ClipTextEncoder } = await models('clip/index.js');
const { parseStepLlmConfig, stepLlmWeightSpec } = await models('step-llm/config.js');
const { parseClipConfig, clipWeightSpec } = await models('clip/config.js');
const { ConfigJson } = await models('json-config.js');
const { randomWeights } = await models('weight-source.js');

/** H200 FP32 (non-tensor-core) peak from the datasheet; not measured here (the brief lists none). */
const FP32_DATASHEET_FLOPS = 67e12;
const batch = 2;
const llm = quick
  ? { hidden: 256, heads: 2, groups: 1, layers: 2, ffn: 512, vocab: 512, tokens: 32 }
  : { hidden: 6144, heads: 48, groups: 4, layers: 48, ffn: 16384, vocab: 8192, tokens: 320 };
const clip = quick
  ? { hidden: 64, heads: 4, layers: 2, intermediate: 128, vocab: 120, positions: 77, tokens: 16 }
  : { hidden: 1024, heads: 16, layers: 24, intermediate: 4096, vocab: 47020, positions: 512, tokens: 77 };
const clipValid = [clip.tokens, Math.min(23, clip.tokens)]; // one full prompt, one short one
const attentionShapes = [
  { name: 'step-llm alibi-sqrt causal GQA', B: batch, H: llm.heads, Hkv: llm.groups, S: llm.tokens, D: llm.hidden / llm.heads, alibi: true },
  { name: 'clip padding-masked', B: batch, H: clip.heads, Hkv: clip.heads, S: clip.tokens, D: clip.hidden / clip.heads, alibi: false, kvLen: clipValid },
];

// ---- the PyTorch baseline first, in the same run ----
const torchMs = new Map();
if (!flags['no-baseline']) {
  const config = {
    llm: { ...llm, batch, iterations },
    clip: { ...clip, batch, valid: clipValid, iterations },
    attention: attentionShapes.map((s) => ({ ...s, iterations: iterations * 4 })),
  };
  const result = spawnSync(flags.python ?? 'python3', [path.join(root, 'benchmarks', 'text', 'text_torch.py'), JSON.stringify(config)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (result.error || result.status !== 0) {
    report({ benchmark: 'text-baseline', error: String(result.error ?? result.stderr).slice(-2000) });
  } else {
    for (const line of result.stdout.split('\n').filter((l) => l.startsWith('{'))) {
      const row = JSON.parse(line);
      report({ benchmark: 'text-baseline', ...row });
      if (row.ms !== undefined) torchMs.set(row.name, row.ms);
    }
  }
}

const env = environment(device);
const round = (v, digits = 3) => Number(v.toFixed(digits));
function result(name, t, flops, bytes, flopCeiling, extra = {}) {
  const floorMs = Math.max(flops / flopCeiling, bytes / H200.copyBytesPerSecond) * 1e3;
  const baseline = torchMs.get(name);
  report({
    benchmark: 'text-encode',
    name,
    ...env,
    ...extra,
    medianMs: round(t.medianMs),
    minMs: round(t.minMs),
    tflops: round(flops / (t.medianMs * 1e-3) / 1e12, 1),
    floorMs: round(floorMs),
    ratioToFloor: round(t.medianMs / floorMs, 2),
    torchMs: baseline ?? null,
    ratioToTorch: baseline ? round(t.medianMs / baseline) : null,
  });
}

function causalPairs(n) {
  return (n * (n + 1)) / 2;
}

// ---- Step-LLM ----
{
  const config = parseStepLlmConfig(
    ConfigJson.from({ hidden_size: llm.hidden, num_attention_heads: llm.heads, num_attention_groups: llm.groups, num_layers: llm.layers, ffn_hidden_size: llm.ffn, layernorm_epsilon: 1e-5, padded_vocab_size: llm.vocab }),
  );
  const dtype = onGpu ? 'bf16' : 'f32';
  const started = performance.now();
  const weights = randomWeights(stepLlmWeightSpec(config), { device, dtype, seed: 1, alias: (n) => n.replace(/^transformer\.layers\.\d+\./, 'transformer.layers.0.') });
  const model = new StepLlm(config, weights, device, dtype);
  console.error(`text: Step-LLM random weights in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const ids = Int32Array.from({ length: batch * llm.tokens }, (_, i) => (i * 7919) % llm.vocab);
  const t = await time(device, async () => (await model.forward(ids, [batch, llm.tokens])).dispose(), { iterations });
  const D = config.hiddenSize;
  const T = batch * llm.tokens;
  const layerParams = D * (D + 2 * config.headDim * config.numGroups) + D * D + 2 * config.ffnDim * D + config.ffnDim * D;
  const gemmFlops = 2 * T * layerParams * config.numLayers;
  const attentionFlops = 4 * batch * config.numHeads * causalPairs(llm.tokens) * config.headDim * config.numLayers;
  const bytes = layerParams * config.numLayers * (dtype === 'bf16' ? 2 : 4);
  result('step-llm', t, gemmFlops + attentionFlops, bytes, onGpu ? H200.bf16GemmFlops : FP32_DATASHEET_FLOPS, {
    dtype,
    config: { ...llm, batch, ffnDim: config.ffnDim },
    ...(quick ? {} : { assumption: 'heads 48, groups 4, layers 48, ffn 16384 are assumed (unpublished); hidden 6144 is certain' }),
  });
  model.dispose();
}

// ---- Hunyuan-CLIP, f32 (official) and bf16 ----
for (const dtype of onGpu ? ['f32', 'bf16'] : ['f32']) {
  const config = parseClipConfig(
    ConfigJson.from({ vocab_size: clip.vocab, hidden_size: clip.hidden, num_hidden_layers: clip.layers, num_attention_heads: clip.heads, intermediate_size: clip.intermediate, max_position_embeddings: clip.positions }),
  );
  const model = new ClipTextEncoder(config, randomWeights(clipWeightSpec(config), { device, dtype, seed: 2 }), device, dtype);
  const ids = Int32Array.from({ length: batch * clip.tokens }, (_, i) => (i * 7919 + 1) % clip.vocab);
  const mask = Int32Array.from({ length: batch * clip.tokens }, (_, i) => (i % clip.tokens < clipValid[Math.floor(i / clip.tokens)] ? 1 : 0));
  const t = await time(device, async () => (await model.forward(ids, mask, [batch, clip.tokens])).dispose(), { iterations });
  const D = clip.hidden;
  const T = batch * clip.tokens;
  const layerParams = 4 * D * D + 2 * D * clip.intermediate;
  const flops = 2 * T * layerParams * clip.layers + 4 * batch * clip.heads * clip.tokens * clip.tokens * (D / clip.heads) * clip.layers;
  const bytes = layerParams * clip.layers * (dtype === 'bf16' ? 2 : 4);
  result(`clip-${dtype}`, t, flops, bytes, dtype === 'bf16' ? H200.bf16GemmFlops : FP32_DATASHEET_FLOPS, {
    dtype,
    config: { ...clip, batch, valid: clipValid },
    ...(dtype === 'f32' ? { ceilingNote: 'f32 floor uses the 67 TFLOP/s datasheet FP32 peak (not a measured ceiling)' } : {}),
  });
  model.dispose();
}

// ---- the attention kernel alone ----
for (const s of attentionShapes) {
  const dtype = onGpu ? 'bf16' : 'f32';
  const random = (shape, seed) => {
    let state = seed;
    const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return (state / 4294967296) * 2 - 1;
    });
    return sv.Tensor.from(data, shape, { device, dtype });
  };
  const q = random([s.B, s.H, s.S, s.D], 1);
  const k = random([s.B, s.Hkv, s.S, s.D], 2);
  const v = random([s.B, s.Hkv, s.S, s.D], 3);
  const kvLen = s.kvLen ? sv.Tensor.from(Int32Array.from(s.kvLen), [s.B], { device }) : undefined;
  const options = s.alibi ? { causal: true, alibiSqrt: true } : { kvLen };
  const t = await time(device, () => sv.kernels.attention(q, k, v, options).dispose(), { iterations: iterations * 4, warmup: 3 });
  const pairs = s.alibi ? causalPairs(s.S) : s.kvLen.reduce((n, len) => n + s.S * len, 0) / s.B;
  const flops = 4 * s.B * s.H * pairs * s.D;
  const bytes = (2 * q.numel + k.numel + v.numel) * (dtype === 'bf16' ? 2 : 4);
  result(`attention-${s.name}`, t, flops, bytes, onGpu ? H200.sdpaCudnnFlops : FP32_DATASHEET_FLOPS, { dtype, shape: s });
  for (const x of [q, k, v, kvLen]) x?.dispose();
}
