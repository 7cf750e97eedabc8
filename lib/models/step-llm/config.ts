// Step-LLM (Step1Model) configuration: the keys of step_llm/config.json that shape the network,
// validated, and cross-checked against the checkpoint's tensor shapes (the released numbers of
// heads, groups and layers are not published, so the weights are the authority to agree with).
import type { WeightIndex } from '../../io/tensor-record.js';
import type { WeightSpec } from '../../io/load.js';
import { formatShape } from '../../shape.js';
import { ConfigJson } from '../json-config.js';

export interface StepLlmConfig {
  hiddenSize: number;
  numHeads: number;
  /** Key/value groups (grouped-query attention): query head j uses group ⌊j / (heads / groups)⌋. */
  numGroups: number;
  numLayers: number;
  headDim: number;
  /** ffn_hidden_size as written in config.json. */
  ffnHiddenSize: number;
  /** The FFN width of the weights: ffn_hidden_size rounded up to a multiple of 256. */
  ffnDim: number;
  eps: number;
  vocabSize: number;
  /** Keep the residual stream in f32 while the layers compute in bf16 (fp32_residual_connection). */
  fp32Residual: boolean;
}

const FFN_MULTIPLE = 256;

export function parseStepLlmConfig(config: ConfigJson): StepLlmConfig {
  const hiddenSize = config.int('hidden_size');
  const numHeads = config.int('num_attention_heads');
  const numGroups = config.int('num_attention_groups');
  const ffnHiddenSize = config.int('ffn_hidden_size');
  if (hiddenSize % numHeads !== 0) {
    throw config.error('hidden_size is not a multiple of num_attention_heads', 'num_attention_heads', { expected: `a divisor of ${hiddenSize}`, got: numHeads });
  }
  if (numHeads % numGroups !== 0) {
    throw config.error('num_attention_heads is not a multiple of num_attention_groups', 'num_attention_groups', { expected: `a divisor of ${numHeads}`, got: numGroups });
  }
  return {
    hiddenSize,
    numHeads,
    numGroups,
    numLayers: config.int('num_layers'),
    headDim: hiddenSize / numHeads,
    ffnHiddenSize,
    ffnDim: FFN_MULTIPLE * Math.ceil(ffnHiddenSize / FFN_MULTIPLE),
    eps: config.positive('layernorm_epsilon'),
    vocabSize: config.int('padded_vocab_size'),
    fp32Residual: config.bool('fp32_residual_connection', false),
  };
}

export const EMBEDDING = 'tok_embeddings.word_embeddings.weight';
export const layerPrefix = (layer: number): string => `transformer.layers.${layer}.`;

/** Every tensor of Step1Model with its shape ([out, in] for the bias-free Linear layers). */
export function stepLlmWeightSpec(c: StepLlmConfig): WeightSpec {
  const D = c.hiddenSize;
  const spec = new Map<string, number[]>([[EMBEDDING, [c.vocabSize, D]]]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = layerPrefix(l);
    spec.set(`${p}attention_norm.weight`, [D]);
    spec.set(`${p}attention.wqkv.weight`, [D + 2 * c.headDim * c.numGroups, D]);
    spec.set(`${p}attention.wo.weight`, [D, D]);
    spec.set(`${p}ffn_norm.weight`, [D]);
    spec.set(`${p}feed_forward.w1.weight`, [2 * c.ffnDim, D]);
    spec.set(`${p}feed_forward.w2.weight`, [D, c.ffnDim]);
  }
  return spec;
}

/**
 * The config's numbers against the checkpoint, with ERR_CONFIG messages that say which key
 * disagrees and what the weights imply: the layer count, the wqkv rows (D + 2·head_dim·groups),
 * the w1 rows (2·F′) and the embedding table. Per-tensor shapes are checked afterwards by the loader.
 */
export function checkStepLlmWeights(c: StepLlmConfig, index: WeightIndex, config: ConfigJson): void {
  const layers = new Set<number>();
  for (const name of index.names()) {
    const match = /^transformer\.layers\.(\d+)\./.exec(name);
    if (match) layers.add(Number(match[1]));
  }
  const count = layers.size;
  const contiguous = [...layers].every((l) => l < count);
  if (!contiguous) {
    throw config.error('checkpoint layers are not numbered 0..L-1', 'num_layers', { expected: `layers 0..${count - 1}`, got: [...layers].sort((a, b) => a - b) });
  }
  if (count !== c.numLayers) {
    throw config.error(`num_layers disagrees with the checkpoint (${index.source})`, 'num_layers', { expected: `${count} (transformer.layers.* in the weights)`, got: c.numLayers });
  }
  const D = c.hiddenSize;
  const shapeOf = (name: string): readonly number[] | undefined => (index.has(name) ? index.get(name).shape : undefined);
  const embedding = shapeOf(EMBEDDING);
  if (embedding && (embedding[1] !== D || embedding[0] !== c.vocabSize)) {
    throw config.error(`hidden_size / padded_vocab_size disagree with ${EMBEDDING}`, 'padded_vocab_size', { expected: formatShape([c.vocabSize, D]), got: formatShape(embedding) });
  }
  const wqkv = shapeOf(`${layerPrefix(0)}attention.wqkv.weight`);
  if (wqkv && wqkv[0] !== D + 2 * c.headDim * c.numGroups) {
    const implied = (wqkv[0]! - D) / (2 * c.headDim);
    throw config.error(`num_attention_groups disagrees with attention.wqkv (rows = hidden + 2·head_dim·groups; the weights imply ${Number.isInteger(implied) ? implied : 'no whole number of'} groups)`, 'num_attention_groups', {
      expected: `${D + 2 * c.headDim * c.numGroups} rows`,
      got: formatShape(wqkv),
    });
  }
  const w1 = shapeOf(`${layerPrefix(0)}feed_forward.w1.weight`);
  if (w1 && w1[0] !== 2 * c.ffnDim) {
    throw config.error(`ffn_hidden_size ${c.ffnHiddenSize} (rounded up to ${c.ffnDim}) disagrees with feed_forward.w1 (rows = 2·F′; the weights imply F′ = ${w1[0]! / 2})`, 'ffn_hidden_size', {
      expected: `${2 * c.ffnDim} rows`,
      got: formatShape(w1),
    });
  }
}
