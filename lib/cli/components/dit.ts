// `stepvideo run dit`: one StepVideoModel forward on the official arguments (hidden_states,
// timestep, encoder_hidden_states, encoder_hidden_states_2, encoder_attention_mask), output
// `output` [B, F, C, H, W] (the flow-matching velocity), written as float32.
import { type DType, bf16ArrayToF32, f16BitsToF32 } from '../../dtype.js';
import { StepVideoError } from '../../errors.js';
import type { HostTensor, TensorData } from '../../io/safetensors.js';
import { type DiTNumerics, ParallelDiT, StepVideoDiT } from '../../models/dit/index.js';
import { formatShape } from '../../shape.js';
import { Tensor } from '../../tensor.js';
import { type Component, type ComponentContext, PARALLEL_COMPONENT_OPTIONS, describeParallelism, requireInput, resolvePartDir } from '../component.js';
import { parallelOptions } from '../pipeline-options.js';

/** Any numeric host tensor as float64 numbers (bf16/f16 decoded, integers converted). */
export function hostNumbers(tensor: HostTensor): Float64Array {
  switch (tensor.dtype) {
    case 'bf16':
      return Float64Array.from(bf16ArrayToF32(tensor.data as Uint16Array));
    case 'f16':
      return Float64Array.from(tensor.data as Uint16Array, f16BitsToF32);
    case 'i64':
      return Float64Array.from(tensor.data as BigInt64Array, (v) => Number(v));
    default:
      return Float64Array.from(tensor.data as Float32Array | Int32Array | Uint8Array);
  }
}

export function floatInput(context: ComponentContext, name: string, rank: number, layout: string, dtype: DType): Tensor {
  const host = requireInput(context, name);
  if (host.dtype !== 'f32' && host.dtype !== 'bf16' && host.dtype !== 'f16') {
    throw new StepVideoError('ERR_DTYPE', `${name} must hold floating-point values`, { tensor: name, expected: 'float32, bfloat16 or float16', got: host.dtype });
  }
  if (host.shape.length !== rank) throw new StepVideoError('ERR_SHAPE', `${name} must be ${layout}`, { tensor: name, got: formatShape(host.shape) });
  const data = host.dtype === 'f16' ? Float32Array.from(hostNumbers(host)) : (host.data as Float32Array | Uint16Array);
  return Tensor.from(data, host.shape, { dtype, device: context.device });
}

const component: Component = {
  name: 'dit',
  description: 'Step-Video DiT (transformer/): one denoiser forward, the velocity for the given latents and timestep',
  inputs: [
    { name: 'hidden_states', description: 'latents [B, F, 64, H, W] (float)' },
    { name: 'timestep', description: '[B] timesteps in [0, 1) (the model multiplies by 1000)' },
    { name: 'encoder_hidden_states', description: 'Step-LLM states [B, Ly, 6144] (float)' },
    { name: 'encoder_hidden_states_2', description: 'CLIP states [B, Lc, 1024] (float)' },
    { name: 'encoder_attention_mask', description: '[B, Lc + Ly]: Lc ones (CLIP) then the LLM mask, 1 = keep' },
  ],
  outputs: ['output'],
  options: [
    {
      name: 'numerics',
      type: 'string',
      description: "'bf16-official' reproduces the official bf16 run's roundings (RoPE angles, timestep, key lengths), 'exact' does not; default: bf16-official in bf16, exact in f32",
    },
    ...PARALLEL_COMPONENT_OPTIONS,
  ],
  async run(context: ComponentContext): Promise<Record<string, TensorData>> {
    const numerics = context.options.numerics as DiTNumerics | undefined;
    const dir = resolvePartDir(context.modelDir, 'transformer', 'config.json');
    context.log(`dit: loading ${dir} (${context.dtype} on ${context.device.name})`);
    using model = await StepVideoDiT.load(dir, {
      device: context.device,
      dtype: context.dtype,
      signal: context.signal,
      ...(numerics !== undefined ? { numerics } : {}),
    });
    const timestepHost = requireInput(context, 'timestep');
    const maskHost = requireInput(context, 'encoder_attention_mask');
    if (maskHost.shape.length !== 2) {
      throw new StepVideoError('ERR_SHAPE', 'encoder_attention_mask must be [B, Lc + Ly]', { tensor: 'encoder_attention_mask', got: formatShape(maskHost.shape) });
    }
    using latents = floatInput(context, 'hidden_states', 5, '[B, F, C, H, W]', model.dtype);
    using y = floatInput(context, 'encoder_hidden_states', 3, '[B, Ly, C]', model.dtype);
    using clip = floatInput(context, 'encoder_hidden_states_2', 3, '[B, Lc, C]', model.dtype);
    const timestep = Array.from(hostNumbers(timestepHost));
    // One rank (the plain forward) unless --sequence-parallel / --cfg-parallel ask for more.
    const denoiser = new ParallelDiT(model, parallelOptions(context.options));
    if (denoiser.ranks > 1) context.log(`dit: ${describeParallelism(denoiser)}`);
    using ditContext = denoiser.prepareContext({ y, clip, mask: hostNumbers(maskHost) });
    using output = await denoiser.forward(latents, timestep, ditContext, {
      signal: context.signal,
      onBlock: (done, total) => {
        if (done % 8 === 0 || done === total) context.log(`dit: block ${done}/${total}`);
      },
    });
    return { output: { dtype: 'f32', shape: [...output.shape], data: await output.toFloat32() } };
  },
};

export default component;
