// What a generation job asks for, checked and normalised the way the official pipeline does it:
// the frame count floored to a multiple of 17 (at least 17), height and width floored to
// multiples of 16 (at least 16), each change reported as a warning rather than an error. Values
// that cannot mean anything (NaN, negative, fractional, wrong type) are ERR_ARGUMENT.
import { randomBytes } from 'node:crypto';

import { StepVideoError } from '../errors.js';
import { FRAMES_PER_CHUNK, LATENTS_PER_CHUNK, SPATIAL_FACTOR } from '../models/vae/config.js';
import { CACHE_METHODS, type StepCacheOptions, type TeaCacheCoefficients, parseCacheSpec } from '../sampler/cache.js';
import { type SamplerPresetName, type SamplerSettings, NEG_MAGIC, POS_MAGIC, resolveSamplerSettings } from '../sampler/scheduler.js';

/** The official default size: 204 frames of 544×992 (8.16 s at 25 fps). */
export const RELEASED_DEFAULT_VIDEO = Object.freeze({ frames: 204, height: 544, width: 992 });

export interface VideoSizeRequest {
  frames?: number;
  height?: number;
  width?: number;
}

export interface NormalizedVideoSize {
  frames: number;
  height: number;
  width: number;
}

function requirePositiveInteger(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new StepVideoError('ERR_ARGUMENT', `${name} must be a positive integer`, { got: value });
  }
  return value;
}

/** floor(value / multiple) · multiple, at least `multiple` (the official max(·, 1) chunk rule). */
export function floorToMultiple(value: number, multiple: number): number {
  return Math.max(multiple, Math.floor(value / multiple) * multiple);
}

/**
 * The size a job runs at: each dimension given (or its default) floored as the official pipeline
 * floors it. Every change is described in `warnings`.
 */
export function normalizeVideoSize(request: VideoSizeRequest, defaults: NormalizedVideoSize): { size: NormalizedVideoSize; warnings: string[] } {
  const warnings: string[] = [];
  const pick = (name: 'frames' | 'height' | 'width', multiple: number): number => {
    const given = request[name];
    const value = given === undefined ? defaults[name] : requirePositiveInteger(name, given);
    const floored = floorToMultiple(value, multiple);
    if (floored !== value) {
      const unit = name === 'frames' ? `a multiple of ${multiple} (each ${multiple}-frame chunk is ${LATENTS_PER_CHUNK} latent frames)` : `a multiple of ${multiple} (the VAE's spatial factor)`;
      warnings.push(`${name} ${value} is not ${unit}: using ${floored}`);
    }
    return floored;
  };
  return { size: { frames: pick('frames', FRAMES_PER_CHUNK), height: pick('height', SPATIAL_FACTOR), width: pick('width', SPATIAL_FACTOR) }, warnings };
}

export interface JobRequest extends VideoSizeRequest {
  prompt: string;
  /** The negative prompt (the unconditional row under guidance); default the official NEG_MAGIC. */
  negativePrompt?: string;
  /** Appended to the prompt with no separator; default the official POS_MAGIC ('' for none). */
  positiveMagic?: string;
  steps?: number;
  cfgScale?: number;
  timeShift?: number;
  /** Settings not given come from this preset: 'base' (50 steps, cfg 9, shift 13) or 'turbo' (15, 5, 17). */
  preset?: SamplerPresetName;
  /** Noise seed, an integer in [0, 2^64); default a random one (reported with the video). */
  seed?: number | bigint;
  /**
   * Step caching (lib/sampler/cache.ts), off by default: '<method>[:threshold]' ('auto', 'auto:0.05',
   * 'teacache:0.1') or the options. 'teacache' takes its coefficients from `cacheCoefficients`, else
   * from the model folder's stepvideo-teacache.json (stepvideo calibrate-cache).
   */
  cache?: string | StepCacheOptions;
  /** The 'teacache' coefficients, or the path of a calibration file holding them. */
  cacheCoefficients?: TeaCacheCoefficients | string;
}

export interface ResolvedJob {
  prompt: string;
  /** The caption rows: [prompt + magic] without guidance, [prompt + magic, negative] with it. */
  captionRows: string[];
  size: NormalizedVideoSize;
  settings: SamplerSettings;
  preset: SamplerPresetName;
  seed: bigint;
  cache?: StepCacheOptions;
  warnings: string[];
}

/** A noise seed: an integer in [0, 2^64), as a safe-integer number or a bigint. */
export function checkSeed(seed: unknown): bigint {
  const valid = (typeof seed === 'number' && Number.isSafeInteger(seed)) || typeof seed === 'bigint';
  if (!valid || BigInt(seed as number | bigint) < 0n || BigInt(seed as number | bigint) >= 2n ** 64n) {
    throw new StepVideoError('ERR_ARGUMENT', 'seed must be an integer in [0, 2^64)', { got: typeof seed === 'bigint' ? seed.toString() : seed });
  }
  return BigInt(seed as number | bigint);
}

/** Checks a job request and fills in the defaults; `defaults` is the model's default size. */
export function resolveJob(request: JobRequest, defaults: NormalizedVideoSize): ResolvedJob {
  if (typeof request !== 'object' || request === null) throw new StepVideoError('ERR_ARGUMENT', 'generate needs an options object', { got: request });
  const { prompt } = request;
  if (typeof prompt !== 'string' || prompt.trim() === '') {
    throw new StepVideoError('ERR_ARGUMENT', 'prompt must be a non-empty string', { got: typeof prompt === 'string' ? JSON.stringify(prompt) : typeof prompt });
  }
  for (const key of ['negativePrompt', 'positiveMagic'] as const) {
    if (request[key] !== undefined && typeof request[key] !== 'string') throw new StepVideoError('ERR_ARGUMENT', `${key} must be a string`, { got: typeof request[key] });
  }
  const preset = request.preset ?? 'base';
  const settings = resolveSamplerSettings({
    preset,
    ...(request.steps !== undefined ? { steps: request.steps } : {}),
    ...(request.cfgScale !== undefined ? { cfgScale: request.cfgScale } : {}),
    ...(request.timeShift !== undefined ? { timeShift: request.timeShift } : {}),
  });
  if (settings.cfgScale < 0) throw new StepVideoError('ERR_ARGUMENT', 'cfgScale must not be negative', { got: settings.cfgScale });
  const seed = request.seed === undefined ? randomBytes(4).readUInt32LE(0) : checkSeed(request.seed);
  const { size, warnings } = normalizeVideoSize(request, defaults);
  const positive = prompt + (request.positiveMagic ?? POS_MAGIC);
  const captionRows = settings.cfgScale > 1 ? [positive, request.negativePrompt ?? NEG_MAGIC] : [positive];
  const cache = typeof request.cache === 'string' ? parseCacheSpec(request.cache) : request.cache;
  if (cache !== undefined && (typeof cache !== 'object' || cache === null || !(CACHE_METHODS as readonly unknown[]).includes(cache.method))) {
    throw new StepVideoError('ERR_ARGUMENT', 'cache must be a method name or { method, threshold? }', { expected: CACHE_METHODS.join(' | '), got: JSON.stringify(request.cache) });
  }
  return { prompt, captionRows, size, settings, preset, seed: BigInt(seed), ...(cache ? { cache } : {}), warnings };
}
