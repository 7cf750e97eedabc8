// `stepvideo run sample`: the denoising loop (spec §4) over the DiT of a released model folder,
// from the initial latents and the caption encoders' outputs to the final latents.
import { bf16ArrayToF32, f16BitsToF32, isFloatDType } from '../../dtype.js';
import type { Device } from '../../device.js';
import { StepVideoError } from '../../errors.js';
import type { HostTensor } from '../../io/safetensors.js';
import { ParallelDiT, StepVideoDiT } from '../../models/dit/index.js';
import { SAMPLER_PRESETS, type SamplerPresetName, sample } from '../../sampler/index.js';
import { Tensor, TensorScope } from '../../tensor.js';
import { type Component, type ComponentContext, PARALLEL_COMPONENT_OPTIONS, describeParallelism, requireInput, resolvePartDir } from '../component.js';
import { parallelOptions } from '../pipeline-options.js';

const presetNames = Object.keys(SAMPLER_PRESETS) as SamplerPresetName[];

function floatTensor(context: ComponentContext, name: string, device: Device, dtype: 'f32' | 'bf16'): Tensor {
  const host = requireInput(context, name);
  if (!isFloatDType(host.dtype)) {
    throw new StepVideoError('ERR_DTYPE', `input '${name}' must be floating-point`, { tensor: name, got: host.dtype });
  }
  return Tensor.from(host.data, host.shape, { device, dtype });
}

/** A mask input of any dtype as plain numbers (half floats arrive as bit patterns). */
function hostNumbers(tensor: HostTensor): number[] {
  if (tensor.dtype === 'bf16') return Array.from(bf16ArrayToF32(tensor.data as Uint16Array));
  if (tensor.dtype === 'f16') return Array.from(tensor.data as Uint16Array, f16BitsToF32);
  return Array.from(tensor.data as ArrayLike<number | bigint>, (v) => Number(v));
}

function numberOption(context: ComponentContext, name: string): number | undefined {
  const value = context.options[name];
  return typeof value === 'number' ? value : undefined;
}

export const sampleComponent: Component = {
  name: 'sample',
  description:
    'flow-matching Euler sampling over the DiT with classifier-free guidance (rows [prompt, negative]); latents stay float32 between steps',
  inputs: [
    { name: 'latents_init', description: 'initial noise [B, F, 64, H, W]' },
    { name: 'encoder_hidden_states', description: 'Step-LLM states [rows, Ly, C0]: B prompt rows, then B negative rows' },
    { name: 'encoder_hidden_states_2', description: 'CLIP states [rows, Lc, C1], same rows' },
    { name: 'encoder_attention_mask', description: '[rows, Lc + Ly]: Lc ones, then the LLM mask (1 = keep)' },
  ],
  outputs: ['latents_final'],
  options: [
    { name: 'preset', type: 'string', description: `sampling preset: ${presetNames.map((p) => `${p} (${SAMPLER_PRESETS[p].steps} steps, cfg ${SAMPLER_PRESETS[p].cfgScale}, shift ${SAMPLER_PRESETS[p].timeShift})`).join(', ')}`, default: 'base' },
    { name: 'steps', type: 'number', description: "Euler steps (default: the preset's)" },
    { name: 'cfg-scale', type: 'number', description: "classifier-free guidance scale; <= 1 runs no unconditional pass (default: the preset's)" },
    { name: 'time-shift', type: 'number', description: "time shift of the schedule (default: the preset's)" },
    ...PARALLEL_COMPONENT_OPTIONS,
  ],
  async run(context) {
    const preset = context.options.preset ?? 'base';
    if (typeof preset !== 'string' || !presetNames.includes(preset as SamplerPresetName)) {
      throw new StepVideoError('ERR_USAGE', 'unknown --preset', { expected: presetNames.join(' | '), got: preset });
    }
    const { device, dtype, signal } = context;
    const dir = resolvePartDir(context.modelDir, 'transformer', 'config.json');
    using dit = await StepVideoDiT.load(dir, { device, dtype, signal });
    using scope = new TensorScope();
    const latents = scope.track(floatTensor(context, 'latents_init', device, 'f32'));
    const y = scope.track(floatTensor(context, 'encoder_hidden_states', device, dtype));
    const clip = scope.track(floatTensor(context, 'encoder_hidden_states_2', device, dtype));
    const yMask = hostNumbers(requireInput(context, 'encoder_attention_mask'));
    const steps = numberOption(context, 'steps');
    const cfgScale = numberOption(context, 'cfg-scale');
    const timeShift = numberOption(context, 'time-shift');
    // One rank (the plain forward) unless --sequence-parallel / --cfg-parallel ask for more.
    const denoiser = new ParallelDiT(dit, parallelOptions(context.options));
    if (denoiser.ranks > 1) context.log(`sample: ${describeParallelism(denoiser)}`);
    const result = scope.track(
      await sample(denoiser, {
        latents,
        text: { y, yMask, clip },
        preset: preset as SamplerPresetName,
        ...(steps !== undefined ? { steps } : {}),
        ...(cfgScale !== undefined ? { cfgScale } : {}),
        ...(timeShift !== undefined ? { timeShift } : {}),
        signal,
        onProgress: (p) => context.log(`sample: step ${p.step}/${p.total} (t = ${p.timestep.toFixed(6)}), ${(p.elapsedMs / 1000).toFixed(1)} s, ${(p.etaMs / 1000).toFixed(1)} s left`),
      }),
    );
    return { latents_final: { dtype: 'f32', shape: [...result.shape], data: await result.toFloat32() } };
  },
};

export default sampleComponent;
