// Hunyuan-CLIP (a BERT encoder, transformers.BertModel) configuration from
// hunyuan_clip/clip_text_encoder/config.json, its tensor names (after the `bert.` prefix is
// stripped) and the checks of the config against the checkpoint.
import type { WeightSpec } from '../../io/load.js';
import type { WeightIndex } from '../../io/tensor-record.js';
import { formatShape } from '../../shape.js';
import { ConfigJson } from '../json-config.js';

export interface ClipConfig {
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  typeVocabSize: number;
  eps: number;
}

export function parseClipConfig(config: ConfigJson): ClipConfig {
  const hiddenSize = config.int('hidden_size');
  const numHeads = config.int('num_attention_heads');
  if (hiddenSize % numHeads !== 0) {
    throw config.error('hidden_size is not a multiple of num_attention_heads', 'num_attention_heads', { expected: `a divisor of ${hiddenSize}`, got: numHeads });
  }
  // BertModel's defaults for the keys a config may leave out.
  const act = config.string('hidden_act', 'gelu');
  if (act !== 'gelu') throw config.error('only the exact (erf) GELU of BERT is supported', 'hidden_act', { expected: 'gelu', got: act });
  const positions = config.string('position_embedding_type', 'absolute');
  if (positions !== 'absolute') throw config.error('only absolute position embeddings are supported', 'position_embedding_type', { expected: 'absolute', got: positions });
  return {
    vocabSize: config.int('vocab_size'),
    hiddenSize,
    numLayers: config.int('num_hidden_layers'),
    numHeads,
    headDim: hiddenSize / numHeads,
    intermediateSize: config.int('intermediate_size'),
    maxPositions: config.int('max_position_embeddings'),
    typeVocabSize: config.has('type_vocab_size') ? config.int('type_vocab_size') : 2,
    eps: config.has('layer_norm_eps') ? config.positive('layer_norm_eps') : 1e-12,
  };
}

export const layerPrefix = (layer: number): string => `encoder.layer.${layer}.`;

/** Checkpoint tensors that may be present but are not used: the pooler (its output is discarded) and HF's position-id buffer. */
export const CLIP_UNUSED_TENSORS: readonly RegExp[] = [/^pooler\./, /^embeddings\.position_ids$/];

/** Every tensor BertModel's encoder uses, with its shape, by HF name without `bert.`. */
export function clipWeightSpec(c: ClipConfig): WeightSpec {
  const D = c.hiddenSize;
  const spec = new Map<string, number[]>([
    ['embeddings.word_embeddings.weight', [c.vocabSize, D]],
    ['embeddings.position_embeddings.weight', [c.maxPositions, D]],
    ['embeddings.token_type_embeddings.weight', [c.typeVocabSize, D]],
    ['embeddings.LayerNorm.weight', [D]],
    ['embeddings.LayerNorm.bias', [D]],
  ]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = layerPrefix(l);
    for (const proj of ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense']) {
      spec.set(`${p}${proj}.weight`, [D, D]);
      spec.set(`${p}${proj}.bias`, [D]);
    }
    spec.set(`${p}intermediate.dense.weight`, [c.intermediateSize, D]);
    spec.set(`${p}intermediate.dense.bias`, [c.intermediateSize]);
    spec.set(`${p}output.dense.weight`, [D, c.intermediateSize]);
    spec.set(`${p}output.dense.bias`, [D]);
    for (const norm of ['attention.output.LayerNorm', 'output.LayerNorm']) {
      spec.set(`${p}${norm}.weight`, [D]);
      spec.set(`${p}${norm}.bias`, [D]);
    }
  }
  return spec;
}

/** The layer count and the embedding tables against the checkpoint, as ERR_CONFIG naming the key. */
export function checkClipWeights(c: ClipConfig, index: WeightIndex, config: ConfigJson): void {
  const layers = new Set<number>();
  for (const name of index.names()) {
    const match = /^encoder\.layer\.(\d+)\./.exec(name);
    if (match) layers.add(Number(match[1]));
  }
  if (layers.size !== c.numLayers || [...layers].some((l) => l >= layers.size)) {
    throw config.error(`num_hidden_layers disagrees with the checkpoint (${index.source})`, 'num_hidden_layers', {
      expected: `layers 0..${c.numLayers - 1}`,
      got: `${layers.size} layers (encoder.layer.* in the weights)`,
    });
  }
  const word = 'embeddings.word_embeddings.weight';
  if (index.has(word)) {
    const shape = index.get(word).shape;
    if (shape[0] !== c.vocabSize || shape[1] !== c.hiddenSize) {
      throw config.error(`vocab_size / hidden_size disagree with ${word}`, 'vocab_size', { expected: formatShape([c.vocabSize, c.hiddenSize]), got: formatShape(shape) });
    }
  }
}
