// The DiT's tensors, named as the released checkpoint (the PyTorch module paths), with the shapes
// the config implies; plus the cross-checks between config.json and the checkpoint that give a
// clearer error than "tensor missing" when the two disagree.
import { StepVideoError } from '../../errors.js';
import type { WeightSpec } from '../../io/load.js';
import type { WeightIndex } from '../../io/tensor-record.js';
import { formatShape } from '../../shape.js';
import type { DiTConfig } from './config.js';

/** Every tensor of StepVideoModel and its shape (785 tensors for the released 48 layers). */
export function ditWeightSpec(config: DiTConfig): WeightSpec {
  const D = config.innerDim;
  const Dh = config.attentionHeadDim;
  const p = config.patchSize;
  const [llm, clip] = config.captionChannels;
  const spec = new Map<string, number[]>([
    ['pos_embed.proj.weight', [D, config.inChannels, p, p]],
    ['pos_embed.proj.bias', [D]],
    ['adaln_single.emb.timestep_embedder.linear_1.weight', [D, config.timestepChannels]],
    ['adaln_single.emb.timestep_embedder.linear_1.bias', [D]],
    ['adaln_single.emb.timestep_embedder.linear_2.weight', [D, D]],
    ['adaln_single.emb.timestep_embedder.linear_2.bias', [D]],
    ['adaln_single.linear.weight', [6 * D, D]],
    ['adaln_single.linear.bias', [6 * D]],
    ['caption_projection.linear_1.weight', [D, llm]],
    ['caption_projection.linear_1.bias', [D]],
    ['caption_projection.linear_2.weight', [D, D]],
    ['caption_projection.linear_2.bias', [D]],
    ['clip_projection.weight', [D, clip]],
    ['clip_projection.bias', [D]],
    ['scale_shift_table', [2, D]],
    ['proj_out.weight', [p * p * config.outChannels, D]],
    ['proj_out.bias', [p * p * config.outChannels]],
  ]);
  for (let i = 0; i < config.numLayers; i++) {
    const block = `transformer_blocks.${i}`;
    spec.set(`${block}.norm1.weight`, [D]);
    spec.set(`${block}.norm1.bias`, [D]);
    spec.set(`${block}.attn1.wqkv.weight`, [3 * D, D]);
    spec.set(`${block}.attn1.wo.weight`, [D, D]);
    spec.set(`${block}.attn1.q_norm.weight`, [Dh]);
    spec.set(`${block}.attn1.k_norm.weight`, [Dh]);
    spec.set(`${block}.norm2.weight`, [D]);
    spec.set(`${block}.norm2.bias`, [D]);
    spec.set(`${block}.attn2.wq.weight`, [D, D]);
    spec.set(`${block}.attn2.wkv.weight`, [2 * D, D]);
    spec.set(`${block}.attn2.wo.weight`, [D, D]);
    spec.set(`${block}.attn2.q_norm.weight`, [Dh]);
    spec.set(`${block}.attn2.k_norm.weight`, [Dh]);
    spec.set(`${block}.ff.net.0.proj.weight`, [config.ffnDim, D]);
    spec.set(`${block}.ff.net.2.weight`, [D, config.ffnDim]);
    spec.set(`${block}.scale_shift_table`, [6, D]);
  }
  return spec;
}

/**
 * Config vs checkpoint, before the tensor-by-tensor check: the number of blocks and the model
 * width must agree, otherwise the error names both numbers (ERR_CONFIG).
 */
export function checkDiTCheckpoint(index: WeightIndex, config: DiTConfig, configFile: string): void {
  const blocks = new Set<number>();
  for (const name of index.names()) {
    const match = /^transformer_blocks\.(\d+)\./.exec(name);
    if (match) blocks.add(Number(match[1]));
  }
  if (blocks.size > 0 && blocks.size !== config.numLayers) {
    throw new StepVideoError('ERR_CONFIG', 'config.json and the checkpoint disagree on the number of transformer blocks', {
      file: configFile,
      expected: `num_layers = ${config.numLayers}`,
      got: `${blocks.size} blocks in ${index.source}`,
    });
  }
  const patch = index.find('pos_embed.proj.weight');
  if (patch && patch.shape[0] !== config.innerDim) {
    throw new StepVideoError('ERR_CONFIG', 'config.json and the checkpoint disagree on the model width', {
      file: configFile,
      expected: `num_attention_heads x attention_head_dim = ${config.numAttentionHeads} x ${config.attentionHeadDim} = ${config.innerDim}`,
      got: `pos_embed.proj.weight ${formatShape(patch.shape)}`,
      tensor: 'pos_embed.proj.weight',
    });
  }
}
