// Config parsing of the text encoders and the cross-checks of a Step-LLM config against checkpoint
// shapes, on synthetic configs and indexes (no weights read). The released Step-LLM numbers of
// heads, groups and layers are unpublished; these checks are what catches a wrong guess.
import { describe, expect, it } from 'vitest';

import { TensorIndex, type TensorRecord } from '../../lib/io/tensor-record.js';
import { parseClipConfig } from '../../lib/models/clip/config.js';
import { ConfigJson } from '../../lib/models/json-config.js';
import { checkStepLlmWeights, parseStepLlmConfig, stepLlmWeightSpec } from '../../lib/models/step-llm/config.js';

const stepConfig = {
  hidden_size: 6144,
  num_attention_heads: 48,
  num_attention_groups: 4,
  num_layers: 3,
  ffn_hidden_size: 16000,
  layernorm_epsilon: 1e-5,
  padded_vocab_size: 65536,
};

function indexOf(shapes: ReadonlyMap<string, readonly number[]>): TensorIndex {
  const records: TensorRecord[] = [...shapes].map(([name, shape], i) => ({ name, dtype: 'BF16', shape: [...shape], file: '/nonexistent/model.safetensors', offset: i, byteLength: 0 }));
  return new TensorIndex({ format: 'safetensors', source: '/nonexistent/model.safetensors', records });
}

describe('Step-LLM config', () => {
  it('derives head_dim and rounds ffn_hidden_size up to a multiple of 256', () => {
    const c = parseStepLlmConfig(ConfigJson.from(stepConfig));
    expect(c).toMatchObject({ headDim: 128, ffnDim: 16128, fp32Residual: false, numGroups: 4 });
    for (const [raw, rounded] of [[256, 256], [257, 512], [300, 512], [11008, 11008], [13696, 13824]]) {
      expect(parseStepLlmConfig(ConfigJson.from({ ...stepConfig, ffn_hidden_size: raw })).ffnDim).toBe(rounded);
    }
    expect(parseStepLlmConfig(ConfigJson.from({ ...stepConfig, fp32_residual_connection: true })).fp32Residual).toBe(true);
  });

  it('lays out wqkv as D + 2·head_dim·groups rows and w1 as 2·F′ rows', () => {
    const spec = stepLlmWeightSpec(parseStepLlmConfig(ConfigJson.from(stepConfig)));
    expect(spec.get('transformer.layers.2.attention.wqkv.weight')).toEqual([6144 + 2 * 128 * 4, 6144]);
    expect(spec.get('transformer.layers.0.feed_forward.w1.weight')).toEqual([2 * 16128, 6144]);
    expect(spec.get('transformer.layers.0.feed_forward.w2.weight')).toEqual([6144, 16128]);
    expect(spec.get('tok_embeddings.word_embeddings.weight')).toEqual([65536, 6144]);
    expect(spec.size).toBe(1 + 3 * 6);
  });

  it('rejects missing, ill-typed and inconsistent keys as ERR_CONFIG', () => {
    const bad = (edit: Record<string, unknown>) => () => parseStepLlmConfig(ConfigJson.from({ ...stepConfig, ...edit }, 'step_llm/config.json'));
    expect(bad({ hidden_size: undefined })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', file: 'step_llm/config.json', message: expect.stringContaining('hidden_size') }));
    expect(bad({ num_layers: 2.5 })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
    expect(bad({ layernorm_epsilon: -1 })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
    expect(bad({ num_attention_heads: 5 })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining('num_attention_heads') }));
    expect(bad({ num_attention_groups: 5 })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining('num_attention_groups') }));
    expect(bad({ fp32_residual_connection: 'yes' })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
    expect(() => ConfigJson.from([1, 2])).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
  });

  it('cross-checks layers, groups, FFN width and vocabulary against the checkpoint', () => {
    const json = ConfigJson.from(stepConfig);
    const c = parseStepLlmConfig(json);
    const shapes = stepLlmWeightSpec(c);
    expect(() => checkStepLlmWeights(c, indexOf(shapes), json)).not.toThrow();

    const guessed = (edit: Record<string, unknown>) => {
      const j = ConfigJson.from({ ...stepConfig, ...edit });
      return () => checkStepLlmWeights(parseStepLlmConfig(j), indexOf(shapes), j);
    };
    expect(guessed({ num_layers: 48 })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining("'num_layers'") }));
    expect(guessed({ num_attention_groups: 8 })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining('imply 4 groups') }));
    expect(guessed({ ffn_hidden_size: 16384 })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining('F′ = 16128') }));
    expect(guessed({ padded_vocab_size: 65537 })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining("'padded_vocab_size'") }));

    const gap = new Map([...shapes].filter(([name]) => !name.startsWith('transformer.layers.1.')));
    expect(() => checkStepLlmWeights(c, indexOf(gap), json)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining('not numbered') }));
  });
});

describe('Hunyuan-CLIP config', () => {
  const bert = { vocab_size: 47020, hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, intermediate_size: 4096, max_position_embeddings: 512, hidden_act: 'gelu', layer_norm_eps: 1e-12 };
  it('reads the BERT keys, with BertModel defaults for the optional ones', () => {
    expect(parseClipConfig(ConfigJson.from(bert))).toEqual({ vocabSize: 47020, hiddenSize: 1024, numLayers: 24, numHeads: 16, headDim: 64, intermediateSize: 4096, maxPositions: 512, typeVocabSize: 2, eps: 1e-12 });
  });
  it('refuses activations and position embeddings it does not implement', () => {
    expect(() => parseClipConfig(ConfigJson.from({ ...bert, hidden_act: 'gelu_new' }))).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining('hidden_act') }));
    expect(() => parseClipConfig(ConfigJson.from({ ...bert, position_embedding_type: 'relative_key' }))).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
    expect(() => parseClipConfig(ConfigJson.from({ ...bert, num_attention_heads: 7 }))).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
  });
});
