// The VAE's tensors, named as PyTorch module paths (spec Appendix A), with the shapes the config
// implies. The released file differs in one name: it stores decoder.conv_out.weight/bias where the
// module path is decoder.conv_out.conv.*; loading renames it. Convolution weights are repacked to
// the layout the conv kernels read ([Cout, kt, kh, kw, Cin], see native/conv.h) right after loading.
import type { Device } from '../../device.js';
import type { DType } from '../../dtype.js';
import { renameKeys } from '../../io/index.js';
import type { WeightSpec } from '../../io/load.js';
import type { WeightIndex } from '../../io/tensor-record.js';
import * as ops from '../../ops.js';
import type { Tensor } from '../../tensor.js';
import { TensorWeights, randomWeights } from '../weight-source.js';
import { DECODER_3D_UP_LEVELS, ENCODER_3D_DOWN_LEVELS, type VaeConfig, patchChannels } from './config.js';

export type VaePart = 'encoder' | 'decoder';

/** The released file's name for the decoder's output convolution (no `.conv` level). */
const RELEASED_CONV_OUT = 'decoder.conv_out.';
const MODULE_CONV_OUT = 'decoder.conv_out.conv.';

function addResBlock(spec: Map<string, number[]>, prefix: string, cin: number, cout: number): void {
  spec.set(`${prefix}.norm1.weight`, [cin]);
  spec.set(`${prefix}.norm1.bias`, [cin]);
  spec.set(`${prefix}.conv1.conv.weight`, [cout, cin, 3, 3, 3]);
  spec.set(`${prefix}.conv1.conv.bias`, [cout]);
  spec.set(`${prefix}.norm2.weight`, [cout]);
  spec.set(`${prefix}.norm2.bias`, [cout]);
  spec.set(`${prefix}.conv2.conv.weight`, [cout, cout, 3, 3, 3]);
  spec.set(`${prefix}.conv2.conv.bias`, [cout]);
  if (cin !== cout) {
    spec.set(`${prefix}.nin_shortcut.conv.weight`, [cout, cin, 1, 1, 1]);
    spec.set(`${prefix}.nin_shortcut.conv.bias`, [cout]);
  }
}

function addMid(spec: Map<string, number[]>, prefix: string, c: number): void {
  addResBlock(spec, `${prefix}.block_1`, c, c);
  spec.set(`${prefix}.attn_1.norm.weight`, [c]);
  spec.set(`${prefix}.attn_1.norm.bias`, [c]);
  for (const proj of ['q', 'k', 'v', 'proj_out']) {
    spec.set(`${prefix}.attn_1.${proj}.conv.weight`, [c, c, 1, 1, 1]);
    spec.set(`${prefix}.attn_1.${proj}.conv.bias`, [c]);
  }
  addResBlock(spec, `${prefix}.block_2`, c, c);
}

function conv(spec: Map<string, number[]>, name: string, shape: number[]): void {
  spec.set(`${name}.weight`, shape);
  spec.set(`${name}.bias`, [shape[0]!]);
}

/** VideoEncoder, version 2 (110 tensors released). */
export function encoderWeightSpec(config: VaeConfig): WeightSpec {
  const { ch, chMult, blocksPerLevel } = config.encoder;
  const spec = new Map<string, number[]>();
  conv(spec, 'encoder.conv_in.conv', [ch, 3, 3, 3, 3]);
  let width = ch;
  for (let level = 0; level < chMult.length; level++) {
    const out = ch * chMult[level]!;
    for (let b = 0; b < blocksPerLevel; b++) {
      addResBlock(spec, `encoder.down.${level}.block.${b}`, width, out);
      width = out;
    }
    if (level === chMult.length - 1) continue;
    if (ENCODER_3D_DOWN_LEVELS.includes(level)) conv(spec, `encoder.down.${level}.downsample.conv.conv`, [width, width, 3, 3, 3]);
    else conv(spec, `encoder.down.${level}.downsample.conv`, [width, width, 3, 3]);
  }
  addMid(spec, 'encoder.mid', width);
  spec.set('encoder.norm_out.weight', [width]);
  spec.set('encoder.norm_out.bias', [width]);
  const channels = patchChannels(config);
  conv(spec, 'encoder.conv_patchify.conv.conv', [channels / 8, width, 3, 3, 3]);
  conv(spec, 'encoder.conv_out.conv', [2 * config.zChannels, channels, 3, 3, 3]);
  return spec;
}

/** VideoDecoder, version 2 (150 tensors released), module paths (conv_out with `.conv`). */
export function decoderWeightSpec(config: VaeConfig): WeightSpec {
  const { ch, chMult, blocksPerLevel } = config.decoder;
  const spec = new Map<string, number[]>();
  const channels = patchChannels(config);
  let width = ch * chMult[chMult.length - 1]!;
  conv(spec, 'decoder.conv_in.conv', [channels, config.zChannels, 3, 3, 3]);
  conv(spec, 'decoder.conv_unpatchify.conv.conv', [width * 8, channels, 3, 3, 3]);
  addMid(spec, 'decoder.mid', width);
  for (let level = chMult.length - 1; level >= 0; level--) {
    const out = ch * chMult[level]!;
    for (let b = 0; b < blocksPerLevel; b++) {
      addResBlock(spec, `decoder.up.${level}.block.${b}`, width, out);
      width = out;
    }
    if (level === 0) continue;
    if (DECODER_3D_UP_LEVELS.includes(level)) {
      const up = `decoder.up.${level}.upsample.conv3d`;
      conv(spec, `${up}.conv1.conv`, [width, width, 3, 3, 3]);
      spec.set(`${up}.norm1.weight`, [width]);
      spec.set(`${up}.norm1.bias`, [width]);
      conv(spec, `${up}.conv2.conv`, [width, width, 3, 3, 3]);
      spec.set(`${up}.norm2.weight`, [width]);
      spec.set(`${up}.norm2.bias`, [width]);
    } else {
      conv(spec, `decoder.up.${level}.upsample.conv`, [width, width, 3, 3]);
    }
  }
  spec.set('decoder.norm_out.weight', [width]);
  spec.set('decoder.norm_out.bias', [width]);
  conv(spec, 'decoder.conv_out.conv', [3, width, 3, 3, 3]);
  return spec;
}

export function vaeWeightSpec(config: VaeConfig, parts: readonly VaePart[]): WeightSpec {
  const spec = new Map<string, readonly number[]>();
  if (parts.includes('encoder')) for (const [name, shape] of encoderWeightSpec(config)) spec.set(name, shape);
  if (parts.includes('decoder')) for (const [name, shape] of decoderWeightSpec(config)) spec.set(name, shape);
  return spec;
}

/**
 * The checkpoint as module paths: the released conv_out quirk renamed, and the tensors of parts not
 * loaded left out (a decode-only VAE never reads the encoder).
 */
export function moduleView(index: WeightIndex, parts: readonly VaePart[]): WeightIndex {
  return renameKeys(index, (name) => {
    const part = name.split('.', 1)[0] as VaePart;
    if ((part === 'encoder' || part === 'decoder') && !parts.includes(part)) return undefined;
    return name.startsWith(RELEASED_CONV_OUT) && !name.startsWith(MODULE_CONV_OUT) ? MODULE_CONV_OUT + name.slice(RELEASED_CONV_OUT.length) : name;
  });
}

/** Whether a spec entry is a convolution weight (repacked to channels-last at load). */
export function isConvWeight(name: string, shape: readonly number[]): boolean {
  return name.endsWith('.weight') && (shape.length === 5 || shape.length === 4);
}

/**
 * Deterministic random VAE weights in PyTorch layout (for VideoVAE.fromWeights in tests and
 * benchmarks at the released size): convolutions uniform with std 1/sqrt(fan-in), so activations
 * stay O(1) through the towers; norms 1 ± 0.1; biases ± 0.05.
 */
export function randomVaeWeights(config: VaeConfig, parts: readonly VaePart[], options: { device: Device; dtype: DType; seed?: number }): TensorWeights {
  const spec = vaeWeightSpec(config, parts);
  const raw = randomWeights(spec, { device: options.device, dtype: options.dtype, seed: options.seed ?? 1, bf16Values: true });
  // randomWeights scales a tensor by sqrt(3 / last dimension): for a conv that is the kernel width;
  // rescale to sqrt(3 / fan-in), fan-in = Cin · taps.
  const tensors = new Map<string, Tensor>();
  try {
    for (const [name, shape] of spec) {
      const tensor = raw.get(name);
      if (isConvWeight(name, shape)) {
        const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
        tensors.set(name, ops.scale(tensor, Math.sqrt(shape[shape.length - 1]! / fanIn)));
      } else {
        tensors.set(name, tensor.clone());
      }
    }
  } catch (error) {
    for (const tensor of tensors.values()) tensor.dispose();
    throw error;
  } finally {
    raw.dispose();
  }
  return new TensorWeights(tensors);
}
