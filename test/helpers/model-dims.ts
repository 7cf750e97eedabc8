// The released model's dimensions for the memory-estimate tests (spec §2, §3, §5; Step-LLM numbers
// as the largest plausible: its config ships with the weights, not with this library).
import { parseClipConfig } from '../../lib/models/clip/config.js';
import { parseDiTConfig } from '../../lib/models/dit/config.js';
import { ConfigJson } from '../../lib/models/json-config.js';
import { parseStepLlmConfig } from '../../lib/models/step-llm/config.js';
import { RELEASED_VAE_CONFIG } from '../../lib/models/vae/config.js';
import type { ModelDims } from '../../lib/pipeline/memory.js';

export function releasedDims(): ModelDims {
  return {
    dit: parseDiTConfig({}),
    vae: RELEASED_VAE_CONFIG,
    llm: parseStepLlmConfig(ConfigJson.from({ hidden_size: 6144, num_attention_heads: 48, num_attention_groups: 4, num_layers: 48, ffn_hidden_size: 16384, layernorm_epsilon: 1e-5, padded_vocab_size: 65536 })),
    clip: parseClipConfig(ConfigJson.from({ vocab_size: 47020, hidden_size: 1024, num_hidden_layers: 24, num_attention_heads: 16, intermediate_size: 4096, max_position_embeddings: 512 })),
  };
}
