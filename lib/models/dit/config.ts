// The DiT's config.json (transformer/config.json), parsed and validated: every key of the
// released file is read, values this implementation cannot honour are refused by name.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

import { StepVideoError, asStepVideoError } from '../../errors.js';
import { LATENT_CHANNELS } from '../vae/config.js';

export interface DiTConfig {
  numAttentionHeads: number;
  attentionHeadDim: number;
  /** numAttentionHeads · attentionHeadDim (6144 released). */
  innerDim: number;
  inChannels: number;
  outChannels: number;
  numLayers: number;
  patchSize: number;
  /** [Step-LLM hidden size, CLIP hidden size] (released [6144, 1024]). */
  captionChannels: [number, number];
  /** eps of norm_out and caption_norm (the block LayerNorms use blockNormEps). */
  normEps: number;
  /** eps of the blocks' norm1/norm2: never configured in the official code, always 1e-5. */
  blockNormEps: number;
  /** QK-Norm (RMSNorm) eps, fixed in the official code. */
  qkNormEps: number;
  /** 3D RoPE: head-dim split over (frame, row, column) and base, fixed in the official code. */
  ropeSplit: [number, number, number];
  ropeTheta: number;
  /** FFN inner width (4·innerDim). */
  ffnDim: number;
  /** Channels of the sinusoidal timestep embedding, and the factor applied to t in [0, 1). */
  timestepChannels: number;
  timestepRescale: number;
  dropout: number;
  normType: 'ada_norm_single';
  normElementwiseAffine: false;
  useAdditionalConditions: false;
  /** 'parallel' (xfuser) or 'torch' (SDPA) in the official code: the same math here. */
  attentionType: string;
}

/** The official StepVideoModel defaults (the released config.json), used for keys absent from config.json. */
export const RELEASED_DIT_CONFIG = {
  num_attention_heads: 48,
  attention_head_dim: 128,
  in_channels: LATENT_CHANNELS,
  out_channels: LATENT_CHANNELS,
  num_layers: 48,
  dropout: 0,
  patch_size: 1,
  norm_type: 'ada_norm_single',
  norm_elementwise_affine: false,
  norm_eps: 1e-6,
  use_additional_conditions: false,
  caption_channels: [6144, 1024],
  attention_type: 'parallel',
} as const;

const KNOWN_KEYS = new Set([...Object.keys(RELEASED_DIT_CONFIG), '_class_name', '_diffusers_version', '_name_or_path']);

/** Parses the DiT config object; `file` names it in errors. */
export function parseDiTConfig(json: unknown, file = 'config.json'): DiTConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new StepVideoError('ERR_CONFIG', 'DiT config is not a JSON object', { file });
  }
  const raw = json as Record<string, unknown>;
  const unknown = Object.keys(raw).filter((key) => !KNOWN_KEYS.has(key));
  if (unknown.length > 0) {
    throw new StepVideoError('ERR_CONFIG', 'DiT config has keys this implementation does not know', { file, got: unknown });
  }
  const get = <K extends keyof typeof RELEASED_DIT_CONFIG>(key: K): unknown => (key in raw ? raw[key] : RELEASED_DIT_CONFIG[key]);
  const positiveInt = (key: keyof typeof RELEASED_DIT_CONFIG): number => {
    const value = get(key);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
      throw new StepVideoError('ERR_CONFIG', `DiT config '${key}' must be a positive integer`, { file, got: value });
    }
    return value;
  };
  const unsupported = (key: string, expected: unknown, got: unknown): never => {
    throw new StepVideoError('ERR_UNSUPPORTED', `DiT config '${key}' is not supported`, { file, expected, got });
  };

  const numAttentionHeads = positiveInt('num_attention_heads');
  const attentionHeadDim = positiveInt('attention_head_dim');
  const inChannels = positiveInt('in_channels');
  const outChannels = get('out_channels') === null ? inChannels : positiveInt('out_channels');
  const numLayers = positiveInt('num_layers');
  const patchSize = positiveInt('patch_size');
  const ropeSplit: [number, number, number] = [64, 32, 32];
  // The official self-attention hard-codes the RoPE split [64, 32, 32], so the head dim is 128.
  if (attentionHeadDim !== 128) unsupported('attention_head_dim', '128 (the official RoPE split [64, 32, 32] covers 128 dims)', attentionHeadDim);

  const normEps = get('norm_eps');
  if (typeof normEps !== 'number' || !(normEps > 0) || !Number.isFinite(normEps)) {
    throw new StepVideoError('ERR_CONFIG', "DiT config 'norm_eps' must be a positive number", { file, got: normEps });
  }
  const dropout = get('dropout');
  if (typeof dropout !== 'number' || dropout < 0 || dropout > 1) {
    throw new StepVideoError('ERR_CONFIG', "DiT config 'dropout' must be a number in [0, 1] (unused at inference)", { file, got: dropout });
  }
  if (get('norm_type') !== 'ada_norm_single') unsupported('norm_type', 'ada_norm_single', get('norm_type'));
  if (get('norm_elementwise_affine') !== false) unsupported('norm_elementwise_affine', false, get('norm_elementwise_affine'));
  if (get('use_additional_conditions') !== false) {
    unsupported('use_additional_conditions', 'false (no resolution/frame/fps embedders in Step-Video-T2V)', get('use_additional_conditions'));
  }
  const caption = get('caption_channels');
  if (!Array.isArray(caption) || caption.length !== 2 || !caption.every((c) => typeof c === 'number' && Number.isSafeInteger(c) && c > 0)) {
    if (typeof caption === 'number') unsupported('caption_channels', '[llm, clip] (a model without the CLIP projection)', caption);
    throw new StepVideoError('ERR_CONFIG', "DiT config 'caption_channels' must be [llm_channels, clip_channels]", { file, got: caption });
  }
  const attentionType = get('attention_type');
  if (typeof attentionType !== 'string') {
    throw new StepVideoError('ERR_CONFIG', "DiT config 'attention_type' must be a string", { file, got: attentionType });
  }
  const innerDim = numAttentionHeads * attentionHeadDim;
  return {
    numAttentionHeads,
    attentionHeadDim,
    innerDim,
    inChannels,
    outChannels,
    numLayers,
    patchSize,
    captionChannels: [caption[0] as number, caption[1] as number],
    normEps,
    blockNormEps: 1e-5,
    qkNormEps: 1e-6,
    ropeSplit,
    ropeTheta: 10000,
    ffnDim: 4 * innerDim,
    timestepChannels: 256,
    timestepRescale: 1000,
    dropout,
    normType: 'ada_norm_single',
    normElementwiseAffine: false,
    useAdditionalConditions: false,
    attentionType,
  };
}

/** Reads and parses `<dir>/config.json`. */
export async function readDiTConfig(dir: string): Promise<DiTConfig> {
  const file = path.join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw asStepVideoError(error, missing ? 'ERR_WEIGHTS_MISSING' : 'ERR_IO', 'cannot read the DiT config', { file });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw asStepVideoError(error, 'ERR_CONFIG', 'DiT config is not valid JSON', { file });
  }
  return parseDiTConfig(json, file);
}
