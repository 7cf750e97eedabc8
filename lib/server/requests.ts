// Validation of the server's JSON requests: every field checked for type and range, unknown fields
// refused, each problem a 400 that names the field. The ranges are the server's limits (a video
// server on one GPU should not accept a job that cannot finish).
import type { JobRequest } from '../pipeline/options.js';
import { parseCacheSpec } from '../sampler/cache.js';
import { HttpError } from './http.js';

export interface ServerLimits {
  /** Largest accepted `frames` (default 204, the official maximum). */
  maxFrames: number;
  /** Largest accepted `height` and `width` (default 1024). */
  maxSize: number;
  /** Largest accepted `steps` (default 100). */
  maxSteps: number;
  /** Longest prompt, in characters (default 4000). */
  maxPromptChars: number;
  /** Most prompts in one /caption-api request (default 16). */
  maxPrompts: number;
  /** JSON bodies (default 64 KiB). */
  maxJsonBytes: number;
  /** /vae-api bodies (default 64 MiB). */
  maxVaeBytes: number;
  /** Jobs waiting (not running) before POST /v1/videos answers 503 (default 32). */
  maxQueued: number;
  /** Finished jobs kept (with their files) before the oldest are forgotten (default 100). */
  maxFinished: number;
}

export const DEFAULT_LIMITS: Readonly<ServerLimits> = Object.freeze({
  maxFrames: 204,
  maxSize: 1024,
  maxSteps: 100,
  maxPromptChars: 4000,
  maxPrompts: 16,
  maxJsonBytes: 64 * 1024,
  maxVaeBytes: 64 * 1024 * 1024,
  maxQueued: 32,
  maxFinished: 100,
});

export type ServerVideoFormat = 'mp4' | 'y4m';

export interface VideoJobRequest extends JobRequest {
  format: ServerVideoFormat;
  crop: boolean;
  /** Set by the OpenAI layer (openai.ts) for reporting only; parseVideoRequest never sets or accepts them. */
  model?: string;
  /** The requested `seconds`, as given. */
  seconds?: string;
  /** The requested `size` ('WIDTHxHEIGHT'), as given. */
  sizeText?: string;
}

const bad = (field: string, message: string) => new HttpError(400, 'invalid_field', `'${field}' ${message}`);

function string(body: Record<string, unknown>, field: string, max: number, required: boolean): string | undefined {
  const value = body[field];
  if (value === undefined) {
    if (required) throw bad(field, 'is required');
    return undefined;
  }
  if (typeof value !== 'string') throw bad(field, `must be a string (got ${typeof value})`);
  if (required && value.trim() === '') throw bad(field, 'must not be empty');
  if (value.length > max) throw bad(field, `is longer than ${max} characters`);
  return value;
}

function integer(body: Record<string, unknown>, field: string, min: number, max: number): number | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw bad(field, `must be an integer (got ${JSON.stringify(value)})`);
  if (value < min || value > max) throw bad(field, `must be in [${min}, ${max}] (got ${value})`);
  return value;
}

function number(body: Record<string, unknown>, field: string, min: number, max: number, minExclusive = false): number | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(field, `must be a number (got ${JSON.stringify(value)})`);
  if (value > max || (minExclusive ? value <= min : value < min)) throw bad(field, `must be in ${minExclusive ? '(' : '['}${min}, ${max}] (got ${value})`);
  return value;
}

function oneOf<T extends string>(body: Record<string, unknown>, field: string, allowed: readonly T[]): T | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !allowed.includes(value as T)) throw bad(field, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')} (got ${JSON.stringify(value)})`);
  return value as T;
}

const VIDEO_FIELDS = ['prompt', 'negativePrompt', 'frames', 'height', 'width', 'steps', 'cfgScale', 'timeShift', 'seed', 'preset', 'format', 'crop', 'cache'];

/** POST /v1/videos: the job request, with defaults left to the pipeline (format mp4, crop on). */
export function parseVideoRequest(body: Record<string, unknown>, limits: ServerLimits): VideoJobRequest {
  const unknown = Object.keys(body).filter((key) => !VIDEO_FIELDS.includes(key));
  if (unknown.length > 0) throw new HttpError(400, 'unknown_field', `unknown field(s) ${unknown.map((k) => `'${k}'`).join(', ')}; known: ${VIDEO_FIELDS.join(', ')}`);
  const request: VideoJobRequest = { prompt: string(body, 'prompt', limits.maxPromptChars, true)!, format: oneOf(body, 'format', ['mp4', 'y4m'] as const) ?? 'mp4', crop: true };
  const set = <K extends keyof VideoJobRequest>(key: K, value: VideoJobRequest[K] | undefined) => {
    if (value !== undefined) request[key] = value;
  };
  set('negativePrompt', string(body, 'negativePrompt', limits.maxPromptChars, false));
  set('frames', integer(body, 'frames', 1, limits.maxFrames));
  set('height', integer(body, 'height', 1, limits.maxSize));
  set('width', integer(body, 'width', 1, limits.maxSize));
  set('steps', integer(body, 'steps', 1, limits.maxSteps));
  set('cfgScale', number(body, 'cfgScale', 0, 100));
  set('timeShift', number(body, 'timeShift', 0, 1000, true));
  set('seed', integer(body, 'seed', 0, Number.MAX_SAFE_INTEGER));
  set('preset', oneOf(body, 'preset', ['base', 'turbo'] as const));
  const cache = string(body, 'cache', 40, false);
  if (cache !== undefined) {
    try {
      parseCacheSpec(cache);
    } catch (error) {
      throw bad('cache', (error as Error).message);
    }
    request.cache = cache;
  }
  if (body.crop !== undefined) {
    if (typeof body.crop !== 'boolean') throw bad('crop', `must be true or false (got ${JSON.stringify(body.crop)})`);
    request.crop = body.crop;
  }
  return request;
}

/** /caption-api: `{ "prompts": [string, ...] }`. */
export function parseCaptionRequest(body: Record<string, unknown>, limits: ServerLimits): string[] {
  const unknown = Object.keys(body).filter((key) => key !== 'prompts');
  if (unknown.length > 0) throw new HttpError(400, 'unknown_field', `unknown field(s) ${unknown.map((k) => `'${k}'`).join(', ')}; expected { "prompts": [...] }`);
  const prompts = body.prompts;
  if (!Array.isArray(prompts)) throw bad('prompts', 'must be an array of strings');
  if (prompts.length === 0 || prompts.length > limits.maxPrompts) throw bad('prompts', `must hold 1 to ${limits.maxPrompts} prompts (got ${prompts.length})`);
  prompts.forEach((p, i) => {
    if (typeof p !== 'string') throw bad(`prompts[${i}]`, `must be a string (got ${typeof p})`);
    if (p.length > limits.maxPromptChars) throw bad(`prompts[${i}]`, `is longer than ${limits.maxPromptChars} characters`);
  });
  return prompts as string[];
}
