// The video VAE's hyper-parameters (spec §3, version 2). The released vae/ folder ships no config:
// absent config.json means the released values; a present one may override z_channels and the
// encoder's / decoder's base width `ch` and `ch_mult` (the golden folder does). Everything else is
// the architecture itself: 17 frames <-> 3 latent frames, 16x spatial, 32 GroupNorm groups.
import { existsSync } from 'node:fs';
import path from 'node:path';

import { StepVideoError } from '../../errors.js';
import { ConfigJson } from '../json-config.js';

export interface VaeTowerConfig {
  /** Base width; level i has ch · chMult[i] channels. */
  ch: number;
  /** Width multipliers of the four levels (0 = full resolution). */
  chMult: readonly number[];
  /** Resnet blocks per level: 2 in the encoder, 3 (num_res_blocks + 1) in the decoder. */
  blocksPerLevel: number;
}

export interface VaeConfig {
  /** Latent channels (released 64). */
  zChannels: number;
  encoder: VaeTowerConfig;
  decoder: VaeTowerConfig;
}

/** Frames per independently decoded chunk, and the latent frames they come from: a video's frame count is a multiple of 17. */
export const FRAMES_PER_CHUNK = 17;
export const LATENTS_PER_CHUNK = 3;
/** Spatial compression: a video's height and width are multiples of 16. */
export const SPATIAL_FACTOR = 16;
/** Latent channels of the released VAE (z_channels; the DiT's in_channels and out_channels). */
export const LATENT_CHANNELS = 64;
export const GROUP_NORM_GROUPS = 32;
/** Encoder levels that end in a Downsample3D (level 0: Downsample2D, level 3: none). */
export const ENCODER_3D_DOWN_LEVELS: readonly number[] = [1, 2];
/** Decoder levels that end in an Upsample3D (level 1: Upsample2D, level 0: none). */
export const DECODER_3D_UP_LEVELS: readonly number[] = [2, 3];
/** Frames the decoder drops at its end (temporal_downsample − 1). */
export const DECODER_DROPPED_FRAMES = 3;

export const RELEASED_VAE_CONFIG: VaeConfig = Object.freeze({
  zChannels: LATENT_CHANNELS,
  encoder: Object.freeze({ ch: 32, chMult: Object.freeze([4, 8, 16, 16]), blocksPerLevel: 2 }),
  decoder: Object.freeze({ ch: 128, chMult: Object.freeze([1, 2, 4, 4]), blocksPerLevel: 3 }),
});

/** Channels of the v2 patchify/unpatchify stage: 4 · z · 2³ (2048 released). */
export function patchChannels(config: VaeConfig): number {
  return 4 * config.zChannels * 8;
}

function tower(json: ConfigJson, key: 'encoder' | 'decoder', released: VaeTowerConfig): VaeTowerConfig {
  if (!json.has(key)) return released;
  const value = json.values[key];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw json.error(`'${key}' must be an object`, key);
  const sub = ConfigJson.from(value, json.file);
  const ch = sub.has('ch') ? sub.int('ch') : released.ch;
  let chMult = released.chMult;
  if (sub.has('ch_mult')) {
    const mult = sub.values.ch_mult;
    if (!Array.isArray(mult) || mult.length !== 4 || !mult.every((m) => Number.isSafeInteger(m) && (m as number) > 0)) {
      throw json.error('ch_mult must list four positive integers (the VAE has four levels)', `${key}.ch_mult`, { got: mult });
    }
    chMult = mult as number[];
  }
  for (const m of chMult) {
    if ((ch * m) % GROUP_NORM_GROUPS !== 0) {
      throw json.error(`every level width must be a multiple of ${GROUP_NORM_GROUPS} (GroupNorm groups)`, `${key}.ch`, { got: `${ch} x ${m}` });
    }
  }
  return { ch, chMult, blocksPerLevel: released.blocksPerLevel };
}

/** The config of a vae/ folder: config.json's overrides on top of the released values. */
export async function readVaeConfig(dir: string): Promise<VaeConfig> {
  const file = path.join(dir, 'config.json');
  if (!existsSync(file)) return RELEASED_VAE_CONFIG;
  const json = await ConfigJson.read(file);
  if (json.has('version') && json.values.version !== 2) {
    throw json.error('only the version 2 VAE (vae_v2.safetensors) is supported', 'version', { expected: 2, got: json.values.version });
  }
  return {
    zChannels: json.has('z_channels') ? json.int('z_channels') : RELEASED_VAE_CONFIG.zChannels,
    encoder: tower(json, 'encoder', RELEASED_VAE_CONFIG.encoder),
    decoder: tower(json, 'decoder', RELEASED_VAE_CONFIG.decoder),
  };
}

/** ERR_SHAPE unless `value` is a positive multiple of `factor`. */
export function requireMultiple(what: string, value: number, factor: number, tensor: string): void {
  if (!(value > 0 && value % factor === 0)) {
    throw new StepVideoError('ERR_SHAPE', `${what} must be a positive multiple of ${factor}`, { got: value, tensor });
  }
}
