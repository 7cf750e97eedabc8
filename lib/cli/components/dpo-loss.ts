// `stepvideo run dpo-loss`: the Diffusion-DPO loss of a LoRA on the DiT and its gradient with
// respect to every LoRA tensor given (lib/training/dpo-step.ts), for parity checks from outside.
// Inputs by name: chosen, rejected and noise [B, F, 64, H, W]; sigma [B]; the DiT component's text
// conditioning; the LoRA as `transformer_blocks.<i>.<linear>.lora_A.weight` / `.lora_B.weight`
// (any subset of the seven Linears, prefixes as lora.ts reads them) with the scalar `lora_alpha`.
// Outputs: `loss` (a scalar) and `grad.<name>` for every LoRA tensor, as float32.
import { StepVideoError } from '../../errors.js';
import type { HostTensor, TensorData } from '../../io/safetensors.js';
import { LoraAdapter, StepVideoDiT } from '../../models/dit/index.js';
import { dpoStep } from '../../training/dpo-step.js';
import { DPO_DEFAULTS } from '../../training/trainer.js';
import { type Component, type ComponentContext, requireInput, resolvePartDir } from '../component.js';
import { floatInput, hostNumbers } from './dit.js';

const LORA_TENSOR = /^(?:base_model\.model\.|transformer\.|diffusion_model\.)?transformer_blocks\.(\d+)\.(.+?)\.(lora_A|lora_B)(?:\.[A-Za-z0-9_-]+)?\.weight$/;

const component: Component = {
  name: 'dpo-loss',
  description: 'Diffusion-DPO (flow matching) loss of a LoRA on the DiT against the LoRA-free reference, with its gradient for every LoRA tensor',
  inputs: [
    { name: 'chosen', description: 'clean latents of the preferred videos [B, F, 64, H, W] (float)' },
    { name: 'rejected', description: 'clean latents of the other videos, the same shape' },
    { name: 'noise', description: 'the noise shared by both videos of a pair, the same shape' },
    { name: 'sigma', description: '[B] noise levels in (0, 1): x = (1 - sigma)·x0 + sigma·noise; the DiT gets timestep sigma (it multiplies by 1000)' },
    { name: 'encoder_hidden_states', description: 'Step-LLM states [B, Ly, 6144] (float)' },
    { name: 'encoder_hidden_states_2', description: 'CLIP states [B, Lc, 1024] (float)' },
    { name: 'encoder_attention_mask', description: '[B, Lc + Ly]: Lc ones (CLIP) then the LLM mask, 1 = keep' },
    { name: 'lora_alpha', description: 'the LoRA scale is lora_alpha / r (a scalar)', optional: true },
  ],
  outputs: ['loss', 'grad.<every LoRA tensor given>'],
  options: [{ name: 'beta', type: 'number', description: `the DPO beta (default ${DPO_DEFAULTS.beta})` }],
  acceptsInput: (name) => LORA_TENSOR.test(name),

  async run(context: ComponentContext): Promise<Record<string, TensorData>> {
    const beta = (context.options.beta as number | undefined) ?? DPO_DEFAULTS.beta;
    const loraNames = [...context.inputs.keys()].filter((name) => LORA_TENSOR.test(name));
    if (loraNames.length === 0) throw new StepVideoError('ERR_ARGUMENT', 'no LoRA tensor among the inputs', { expected: 'transformer_blocks.<i>.<linear>.lora_A.weight and .lora_B.weight' });
    const dir = resolvePartDir(context.modelDir, 'transformer', 'config.json');
    context.log(`dpo-loss: loading ${dir} (${context.dtype} on ${context.device.name})`);
    using model = await StepVideoDiT.load(dir, { device: context.device, dtype: context.dtype, signal: context.signal });
    const loraTensors = new Map<string, HostTensor>(loraNames.map((name) => [name, context.inputs.get(name)!]));
    const alpha = context.inputs.get('lora_alpha');
    if (alpha !== undefined) loraTensors.set('lora_alpha', alpha);
    using lora = LoraAdapter.fromTensors(loraTensors, { config: model.config, device: model.device, dtype: model.dtype });

    using chosen = floatInput(context, 'chosen', 5, '[B, F, C, H, W]', model.dtype);
    using rejected = floatInput(context, 'rejected', 5, '[B, F, C, H, W]', model.dtype);
    using noise = floatInput(context, 'noise', 5, '[B, F, C, H, W]', model.dtype);
    using y = floatInput(context, 'encoder_hidden_states', 3, '[B, Ly, C]', model.dtype);
    using clip = floatInput(context, 'encoder_hidden_states_2', 3, '[B, Lc, C]', model.dtype);
    const mask = hostNumbers(requireInput(context, 'encoder_attention_mask'));
    const sigma = Array.from(hostNumbers(requireInput(context, 'sigma')));
    const result = await dpoStep(model, lora, { chosen, rejected, noise, sigma, text: { y, clip, mask } }, {
      beta,
      signal: context.signal,
      onPhase: (phase) => context.log(`dpo-loss: ${phase}`),
    });
    const outputs: Record<string, TensorData> = { loss: { dtype: 'f32', shape: [], data: Float32Array.of(result.loss.loss) } };
    try {
      for (const name of loraNames) {
        const [, block, linear, kind] = LORA_TENSOR.exec(name)!;
        const grad = result.grads!.get(`${Number(block)}.${linear}`)!;
        const t = kind === 'lora_A' ? grad.a : grad.b;
        outputs[`grad.${name}`] = { dtype: 'f32', shape: [...t.shape], data: await t.toFloat32() };
      }
    } finally {
      for (const g of result.grads!.values()) [g.a, g.b].forEach((t) => t.dispose());
    }
    context.log(`dpo-loss: loss ${result.loss.loss.toFixed(6)}, margin ${result.loss.margin.toExponential(3)}, reward accuracy ${(100 * result.loss.accuracy).toFixed(0)}%`);
    return outputs;
  },
};

export default component;
