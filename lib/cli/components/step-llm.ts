// `stepvideo run step-llm`: Step1Model on given token ids (the official forward's `input_ids`),
// output `y` [B, S, hidden] (all positions, pads included), written as float32.
import type { TensorData } from '../../io/safetensors.js';
import { StepLlm } from '../../models/step-llm/index.js';
import { type Component, type ComponentContext, requireInput, resolvePartDir } from '../component.js';
import { hostTokenIds } from './token-inputs.js';

const component: Component = {
  name: 'step-llm',
  description: 'Step-LLM text encoder (step_llm/): last hidden states of every position',
  inputs: [{ name: 'input_ids', description: 'int32/int64 [B, S] token ids (the Step tokenizer pads to S = 320)' }],
  outputs: ['y'],
  async run(context: ComponentContext): Promise<Record<string, TensorData>> {
    const ids = hostTokenIds(requireInput(context, 'input_ids'), 'input_ids');
    const dir = resolvePartDir(context.modelDir, 'step_llm', 'config.json');
    context.log(`step-llm: loading ${dir}`);
    using model = await StepLlm.load(dir, { device: context.device, dtype: context.dtype, signal: context.signal });
    using y = await model.forward(ids.data, ids.shape, { signal: context.signal });
    return { y: { dtype: 'f32', shape: [...y.shape], data: await y.toFloat32() } };
  },
};

export default component;
