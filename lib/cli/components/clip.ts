// `stepvideo run clip`: Hunyuan-CLIP (BertModel) on token ids and their attention mask, output
// `last_hidden_state` [B, S, hidden] (what the DiT consumes), written as float32.
import type { TensorData } from '../../io/safetensors.js';
import { ClipTextEncoder } from '../../models/clip/index.js';
import { type Component, type ComponentContext, requireInput, resolvePartDir } from '../component.js';
import { hostTokenIds } from './token-inputs.js';

const component: Component = {
  name: 'clip',
  description: 'Hunyuan-CLIP text encoder (hunyuan_clip/clip_text_encoder/, BERT); the official server runs it in float32',
  inputs: [
    { name: 'input_ids', description: 'int32/int64 [B, S] token ids (the BERT tokenizer pads to S = 77)' },
    { name: 'attention_mask', description: 'int32/int64 [B, S], ones then zeros (right padding)' },
  ],
  outputs: ['last_hidden_state'],
  async run(context: ComponentContext): Promise<Record<string, TensorData>> {
    const ids = hostTokenIds(requireInput(context, 'input_ids'), 'input_ids');
    const mask = hostTokenIds(requireInput(context, 'attention_mask'), 'attention_mask', ids.shape);
    const dir = resolvePartDir(context.modelDir, 'hunyuan_clip/clip_text_encoder', 'config.json');
    context.log(`clip: loading ${dir}`);
    using model = await ClipTextEncoder.load(dir, { device: context.device, dtype: context.dtype, signal: context.signal });
    using hidden = await model.forward(ids.data, mask.data, ids.shape, { signal: context.signal });
    return { last_hidden_state: { dtype: 'f32', shape: [...hidden.shape], data: await hidden.toFloat32() } };
  },
};

export default component;
