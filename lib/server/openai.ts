// The OpenAI Videos API over the server's jobs, as pure functions the HTTP layer calls: the
// create body (multipart as the `openai` SDK sends it, or JSON) mapped onto the native request and
// validated by parseVideoRequest, jobs shown as the SDK's `Video`, list pages the SDK's cursor
// page can follow, and the delete and content-variant replies. Every refusal is an HttpError with
// OpenAI's `code` and `param`.
//
// The SDK's videos.create() sends every key of its params object as a form field (numbers and
// booleans as their text, objects as `key[sub]`), so the Step-Video knobs travel as extra params:
// `client.videos.create({ prompt, seed: 7, steps: 30 } as VideoCreateParams)`.
import { RELEASED_DEFAULT_VIDEO } from '../pipeline/options.js';
import type { PipelineProgress } from '../pipeline/progress.js';
import { HttpError, parseJsonObject } from './http.js';
import type { Job } from './jobs.js';
import { type ServerLimits, type VideoJobRequest, parseVideoRequest } from './requests.js';

/** The accepted `model` ids, each a sampler preset. */
export const MODEL_IDS = ['step-video-t2v', 'step-video-t2v-turbo'] as const;
export type ModelId = (typeof MODEL_IDS)[number];
export const DEFAULT_MODEL: ModelId = 'step-video-t2v';
export const MODEL_PRESETS: Readonly<Record<ModelId, 'base' | 'turbo'>> = Object.freeze({ 'step-video-t2v': 'base', 'step-video-t2v-turbo': 'turbo' });

/** Frames per second of the released model's videos. */
export const FPS = 25;

/** The preset of a `model` value (absent: the default model); anything else is model_not_found. */
export function presetForModel(model: unknown): 'base' | 'turbo' {
  if (model === undefined) return MODEL_PRESETS[DEFAULT_MODEL];
  if (typeof model === 'string' && (MODEL_IDS as readonly string[]).includes(model)) return MODEL_PRESETS[model as ModelId];
  throw new HttpError(400, 'model_not_found', `model ${JSON.stringify(model)} does not exist; use one of ${MODEL_IDS.map((m) => `'${m}'`).join(', ')}`, {}, 'model');
}

/**
 * Frames for a requested duration: floor(seconds × 25). Nothing more is rounded here: the pipeline
 * floors frames to a multiple of 17 (at least 17) as the official one does, so '4' (100 frames)
 * runs 85 frames (3.4 s). The 1e-9 keeps binary rounding from taking a frame off decimal texts
 * such as '4.6' (4.6 × 25 = 114.99999…).
 */
export function framesForSeconds(seconds: number): number {
  return Math.floor(seconds * FPS + 1e-9);
}

/** A frame count as seconds text: 204 → '8.16', 100 → '4' (frames / 25 never needs more than 2 decimals). */
export function secondsForFrames(frames: number): string {
  return String(Number((frames / FPS).toFixed(2)));
}

// ---------------------------------------------------------------------------------------------
// POST /v1/videos

type FieldKind = 'text' | 'number' | 'boolean';

/** Each native field, the names it is accepted under (OpenAI snake_case first) and how multipart text converts. */
const KNOBS: readonly { native: string; names: readonly string[]; kind: FieldKind }[] = [
  { native: 'prompt', names: ['prompt'], kind: 'text' },
  { native: 'negativePrompt', names: ['negative_prompt', 'negativePrompt'], kind: 'text' },
  { native: 'frames', names: ['frames'], kind: 'number' },
  { native: 'height', names: ['height'], kind: 'number' },
  { native: 'width', names: ['width'], kind: 'number' },
  { native: 'steps', names: ['steps'], kind: 'number' },
  { native: 'cfgScale', names: ['cfg_scale', 'cfgScale'], kind: 'number' },
  { native: 'timeShift', names: ['time_shift', 'timeShift'], kind: 'number' },
  { native: 'seed', names: ['seed'], kind: 'number' },
  { native: 'preset', names: ['preset'], kind: 'text' },
  { native: 'format', names: ['format'], kind: 'text' },
  { native: 'crop', names: ['crop'], kind: 'boolean' },
  { native: 'cache', names: ['cache'], kind: 'text' },
];
const OPENAI_FIELDS: readonly { name: string; kind: FieldKind }[] = [
  { name: 'model', kind: 'text' },
  { name: 'seconds', kind: 'text' }, // kept as sent, for reporting
  { name: 'size', kind: 'text' },
  { name: 'input_reference', kind: 'text' },
];
const KIND = new Map<string, FieldKind>([...KNOBS.flatMap((k) => k.names.map((n) => [n, k.kind] as const)), ...OPENAI_FIELDS.map((f) => [f.name, f.kind] as const)]);
/** Every accepted field name, in the order the unknown_parameter message lists them. */
export const CREATE_FIELDS: readonly string[] = [...OPENAI_FIELDS.map((f) => f.name), ...KNOBS.flatMap((k) => k.names)];

const invalid = (param: string, message: string) => new HttpError(400, 'invalid_field', message, {}, param);
const conflict = (a: string, b: string) => new HttpError(400, 'conflicting_parameters', `'${a}' and '${b}' cannot be given together; give one of them`, {}, b);

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)$/;

/** A multipart text as the JSON value it stands for; text that is not a clean number or boolean stays text so validation names it. */
function fromFormText(kind: FieldKind, text: string): unknown {
  if (kind === 'number' && DECIMAL.test(text)) return Number(text);
  if (kind === 'boolean' && (text === 'true' || text === 'false')) return text === 'true';
  return text;
}

async function formFields(contentType: string, body: Buffer): Promise<Record<string, unknown>> {
  let form: FormData;
  try {
    form = await new Response(body, { headers: { 'content-type': contentType } }).formData();
  } catch (error) {
    throw new HttpError(400, 'bad_multipart', `the body is not valid multipart/form-data: ${(error as Error).message}`);
  }
  const fields: Record<string, unknown> = {};
  for (const [key, value] of form.entries()) {
    // The SDK sends an input_reference object as input_reference[file_id] etc.
    const name = key.startsWith('input_reference[') ? 'input_reference' : key;
    if (typeof value !== 'string') {
      if (name === 'input_reference') throw unsupportedReference();
      throw invalid(key, `'${key}' must be a text field, not a file`);
    }
    if (Object.hasOwn(fields, name)) {
      if (name === 'input_reference') throw unsupportedReference();
      throw invalid(key, `'${key}' is given more than once`);
    }
    const kind = KIND.get(name);
    fields[name] = kind === undefined ? value : fromFormText(kind, value);
  }
  return fields;
}


const unsupportedReference = () =>
  new HttpError(400, 'unsupported_parameter', "'input_reference' is not supported: Step-Video-T2V makes videos from text only", {}, 'input_reference');

/** A positive number of seconds, from a number or a decimal text. */
function parseSeconds(value: unknown, limits: ServerLimits): { frames: number; text: string } {
  const seconds = typeof value === 'number' ? value : typeof value === 'string' && DECIMAL.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isFinite(seconds) || seconds <= 0) throw invalid('seconds', `'seconds' must be a positive number of seconds (got ${JSON.stringify(value)})`);
  const frames = framesForSeconds(seconds);
  const most = limits.maxFrames / FPS;
  if (frames < 1 || frames > limits.maxFrames) {
    throw invalid('seconds', `'seconds' ${seconds} gives ${frames} frames at ${FPS} fps (frames = floor(seconds × ${FPS})); accepted: 1 to ${limits.maxFrames} frames, i.e. ${1 / FPS} to ${most} seconds (the frame count is then floored to a multiple of 17)`);
  }
  return { frames, text: typeof value === 'string' ? value : String(value) };
}

/** 'WIDTHxHEIGHT' as OpenAI writes sizes: '992x544' is 992 wide, 544 high. */
function parseSize(value: unknown): { width: number; height: number } {
  const match = typeof value === 'string' ? /^(\d+)x(\d+)$/.exec(value) : null;
  const width = match ? Number(match[1]) : 0;
  const height = match ? Number(match[2]) : 0;
  if (!(width > 0 && height > 0 && Number.isSafeInteger(width) && Number.isSafeInteger(height))) {
    throw invalid('size', `'size' must be 'WIDTHxHEIGHT' with two positive integers, e.g. '992x544' (got ${JSON.stringify(value)})`);
  }
  return { width, height };
}

/**
 * The body of POST /v1/videos, multipart/form-data (what the `openai` SDK sends) or JSON (also
 * when there is no content type), mapped onto the native request and checked by parseVideoRequest.
 */
export async function parseCreateVideo(contentType: string | undefined, body: Buffer, limits: ServerLimits): Promise<VideoJobRequest> {
  const media = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  let fields: Record<string, unknown>;
  if (media === 'multipart/form-data') fields = await formFields(contentType!, body);
  else if (media === '' || media === 'application/json') fields = parseJsonObject(body);
  else throw new HttpError(415, 'unsupported_media_type', `content type '${media}' is not accepted; send multipart/form-data or application/json`);

  // A JSON null means "not given", as OpenAI's API reads it.
  for (const key of Object.keys(fields)) if (fields[key] === null) delete fields[key];
  const given = (name: string) => fields[name] !== undefined;

  const unknown = Object.keys(fields).filter((key) => !CREATE_FIELDS.includes(key));
  if (unknown.length > 0) {
    throw new HttpError(400, 'unknown_parameter', `unknown parameter(s) ${unknown.map((k) => `'${k}'`).join(', ')}; known: ${CREATE_FIELDS.join(', ')}`, {}, unknown[0]);
  }
  if (given('input_reference')) throw unsupportedReference();
  if (given('seconds') && given('frames')) throw conflict('frames', 'seconds');
  for (const side of ['height', 'width']) if (given('size') && given(side)) throw conflict(side, 'size');

  // The native body, remembering which name each value came under so errors name what was sent.
  const native: Record<string, unknown> = {};
  const sentAs = new Map<string, string>();
  for (const knob of KNOBS) {
    const present = knob.names.filter(given);
    if (present.length > 1) throw conflict(present[1]!, present[0]!);
    if (present.length === 1) {
      native[knob.native] = fields[present[0]!];
      sentAs.set(knob.native, present[0]!);
    }
  }

  const preset = presetForModel(fields.model);
  if (given('model')) {
    if (native.preset !== undefined && native.preset !== preset) {
      throw new HttpError(400, 'conflicting_parameters', `model '${fields.model as string}' runs preset '${preset}' but 'preset' is ${JSON.stringify(native.preset)}; drop one of them`, {}, 'preset');
    }
    native.preset = preset;
  }
  let seconds: string | undefined;
  if (given('seconds')) {
    const parsed = parseSeconds(fields.seconds, limits);
    native.frames = parsed.frames;
    seconds = parsed.text;
    sentAs.set('frames', 'seconds');
  }
  let sizeText: string | undefined;
  if (given('size')) {
    const { width, height } = parseSize(fields.size);
    native.width = width;
    native.height = height;
    sizeText = fields.size as string;
    sentAs.set('width', 'size').set('height', 'size');
  }

  let request: VideoJobRequest;
  try {
    request = parseVideoRequest(native, limits);
  } catch (error) {
    throw renamed(error, sentAs);
  }
  request.model = typeof fields.model === 'string' ? fields.model : request.preset === 'turbo' ? 'step-video-t2v-turbo' : DEFAULT_MODEL;
  if (seconds !== undefined) request.seconds = seconds;
  if (sizeText !== undefined) request.sizeText = sizeText;
  return request;
}

/** parseVideoRequest's error ("'cfgScale' must be …") told in the names the client sent, with `param` set. */
function renamed(error: unknown, sentAs: Map<string, string>): unknown {
  if (!(error instanceof HttpError)) return error;
  const field = /^'([^']+)'/.exec(error.message)?.[1];
  if (field === undefined) return error;
  const param = sentAs.get(field) ?? field;
  const message = param === field ? error.message : param === 'size' ? `'size' is out of range: ${error.message}` : `'${param}'${error.message.slice(field.length + 2)}`;
  return new HttpError(error.status, error.code, message, error.headers, param);
}

// ---------------------------------------------------------------------------------------------
// Jobs as OpenAI videos

export type JobLike = Omit<Job, 'controller'>;

/** The SDK's `Video` plus one extension object, `stepvideo`. */
export interface OpenAIVideo {
  id: string;
  object: 'video';
  model: string;
  status: 'queued' | 'in_progress' | 'completed' | 'failed';
  progress: number;
  created_at: number;
  completed_at: number | null;
  expires_at: number | null;
  prompt: string | null;
  remixed_from_video_id: string | null;
  seconds: string;
  size: string;
  error: { code: string; message: string } | null;
  stepvideo: {
    status: Job['status'];
    seed: string | null;
    frames: number | null;
    height: number | null;
    width: number | null;
    format: VideoJobRequest['format'];
    bytes: number | null;
    started_at: number | null;
    events: string;
    content: string;
  };
}

const STATUS: Readonly<Record<Job['status'], OpenAIVideo['status']>> = {
  queued: 'queued',
  running: 'in_progress',
  succeeded: 'completed',
  failed: 'failed',
  cancelled: 'failed',
};

/** [start, end] of each stage in the overall percent; the weights are loaded before any job runs. */
const STAGE_SPAN: Readonly<Record<PipelineProgress['stage'], readonly [number, number]>> = {
  prepare: [0, 0],
  load: [0, 0],
  text: [0, 5],
  denoise: [5, 90],
  decode: [90, 98],
  write: [98, 100],
};

/** Overall percent of a pipeline progress report, an integer in [0, 100] (stages run in the order above, so it only grows). */
export function progressPercent(progress: PipelineProgress | undefined): number {
  if (progress === undefined) return 0;
  const [start, end] = STAGE_SPAN[progress.stage];
  const fraction = Number.isFinite(progress.fraction) ? Math.min(Math.max(progress.fraction, 0), 1) : 0;
  return Math.min(100, Math.max(0, Math.floor(start + (end - start) * fraction)));
}

/** The percent shown for a job: 100 only once it has completed, so a running one stops at 99. */
function jobPercent(job: JobLike): number {
  if (job.status === 'queued') return 0;
  if (job.status === 'succeeded') return 100;
  return Math.min(99, progressPercent(job.progress));
}

const unixSeconds = (date: Date | undefined): number | null => (date === undefined ? null : Math.floor(date.getTime() / 1000));

export function toOpenAIVideo(job: JobLike): OpenAIVideo {
  const { request, size } = job;
  const finished = job.status === 'succeeded' || job.status === 'failed' || job.status === 'cancelled';
  const seconds = request.seconds ?? secondsForFrames(size?.frames ?? request.frames ?? RELEASED_DEFAULT_VIDEO.frames);
  const sizeText =
    request.sizeText ??
    (size ? `${size.width}x${size.height}`
    : request.width !== undefined || request.height !== undefined ? `${request.width ?? RELEASED_DEFAULT_VIDEO.width}x${request.height ?? RELEASED_DEFAULT_VIDEO.height}`
    : `${RELEASED_DEFAULT_VIDEO.width}x${RELEASED_DEFAULT_VIDEO.height}`);
  let error: OpenAIVideo['error'] = null;
  if (job.status === 'cancelled') error = { code: 'cancelled', message: job.error?.message ?? 'the job was cancelled' };
  else if (job.status === 'failed') error = job.error ? { code: job.error.code, message: job.error.message } : { code: 'internal', message: 'the job failed' };
  const seed = job.seed ?? (request.seed !== undefined ? BigInt(request.seed) : undefined);
  return {
    id: job.id,
    object: 'video',
    model: request.model ?? (request.preset === 'turbo' ? 'step-video-t2v-turbo' : DEFAULT_MODEL),
    status: STATUS[job.status],
    progress: jobPercent(job),
    created_at: Math.floor(job.createdAt.getTime() / 1000),
    completed_at: finished ? unixSeconds(job.finishedAt) : null,
    expires_at: null,
    prompt: request.prompt,
    remixed_from_video_id: null,
    seconds,
    size: sizeText,
    error,
    stepvideo: {
      status: job.status,
      seed: seed === undefined ? null : seed.toString(),
      frames: size?.frames ?? null,
      height: size?.height ?? null,
      width: size?.width ?? null,
      format: request.format,
      bytes: job.result?.bytes ?? null,
      started_at: unixSeconds(job.startedAt),
      events: `/v1/videos/${job.id}/events`,
      content: `/v1/videos/${job.id}/content`,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// GET /v1/videos, DELETE /v1/videos/{id}, GET /v1/videos/{id}/content

export interface VideoListPage {
  object: 'list';
  data: OpenAIVideo[];
  first_id: string | null;
  last_id: string | null;
  has_more: boolean;
}

const badQuery = (param: string, message: string) => new HttpError(400, 'invalid_value', message, {}, param);

/**
 * One page of videos. The SDK's cursor page asks for the next page with `after` = this page's
 * `last_id` while `has_more` is true, keeping `limit` and `order`. Order is by created_at, ties in
 * the input's order; 'desc' is exactly 'asc' reversed, so cursors stay valid either way.
 */
export function listVideos(jobs: readonly JobLike[], query: URLSearchParams): VideoListPage {
  const limitText = query.get('limit');
  const limit = limitText === null ? 20 : /^\d+$/.test(limitText) ? Number(limitText) : Number.NaN;
  if (!(limit >= 1 && limit <= 100)) throw badQuery('limit', `'limit' must be an integer from 1 to 100 (got ${JSON.stringify(limitText)})`);
  const order = query.get('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw badQuery('order', `'order' must be 'asc' or 'desc' (got ${JSON.stringify(order)})`);

  const sorted = jobs.map((job, index) => ({ job, index })).sort((a, b) => a.job.createdAt.getTime() - b.job.createdAt.getTime() || a.index - b.index);
  if (order === 'desc') sorted.reverse();
  const after = query.get('after');
  let start = 0;
  if (after !== null) {
    const at = sorted.findIndex((entry) => entry.job.id === after);
    if (at < 0) throw badQuery('after', `'after' names no known video ('${after}')`);
    start = at + 1;
  }
  const data = sorted.slice(start, start + limit).map((entry) => toOpenAIVideo(entry.job));
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: start + limit < sorted.length };
}

/** The SDK's VideoDeleteResponse. */
export function deletedVideo(id: string): { id: string; object: 'video.deleted'; deleted: true } {
  return { id, object: 'video.deleted', deleted: true };
}

/** GET /v1/videos/{id}/content?variant=: only the video itself exists here. */
export function contentVariant(query: URLSearchParams): 'video' {
  const variant = query.get('variant');
  if (variant === null || variant === 'video') return 'video';
  if (variant === 'thumbnail' || variant === 'spritesheet') {
    throw new HttpError(400, 'unsupported_parameter', `variant '${variant}' is not available: this server keeps only the video`, {}, 'variant');
  }
  throw badQuery('variant', `'variant' must be 'video', 'thumbnail' or 'spritesheet' (got ${JSON.stringify(variant)})`);
}
