// Options and helpers shared by the commands that run the whole pipeline (generate, serve, eval):
// the model folder (or the built-in test model), the device and dtype, the sampling settings, and
// the early checks that should fail before minutes of loading (ffmpeg, formats).
import { parseDType } from '../dtype.js';
import { StepVideoError } from '../errors.js';
import { StepVideo } from '../pipeline/pipeline.js';
import type { JobRequest } from '../pipeline/options.js';
import { type VideoFormat, requireFfmpeg } from '../video/writers.js';
import type { OptionSpec, ParsedArgs } from './args.js';
import type { CommandContext } from './commands/types.js';
import type { ProgressReporter } from './progress.js';

export const MODEL_OPTIONS: readonly OptionSpec[] = [
  { name: 'model', type: 'string', description: 'model folder in the released layout (default: the built-in test model)', placeholder: 'DIR' },
  { name: 'device', type: 'string', description: 'cpu or cuda (default: cuda when a GPU answers)', choices: ['cpu', 'cuda'] },
  { name: 'dtype', type: 'string', description: 'compute precision (default: float32 on cpu, bfloat16 on cuda)', choices: ['float32', 'bfloat16'] },
];

export const SAMPLING_OPTIONS: readonly OptionSpec[] = [
  { name: 'frames', type: 'integer', description: 'frames, floored to a multiple of 17 (default 204; built-in model 34)', placeholder: 'N' },
  { name: 'height', type: 'integer', description: 'height in pixels, floored to a multiple of 16 (default 544; built-in 128)', placeholder: 'H' },
  { name: 'width', type: 'integer', description: 'width in pixels, floored to a multiple of 16 (default 992; built-in 128)', placeholder: 'W' },
  { name: 'steps', type: 'integer', description: 'denoising steps (default 50; 15 with --turbo)', placeholder: 'N' },
  { name: 'cfg-scale', type: 'number', description: 'classifier-free guidance scale (default 9; 5 with --turbo)', placeholder: 'G' },
  { name: 'time-shift', type: 'number', description: 'schedule time shift (default 13; 17 with --turbo)', placeholder: 'S' },
  { name: 'turbo', type: 'boolean', description: 'Step-Video-T2V-Turbo sampling settings (15 steps, cfg 5, shift 17)' },
  { name: 'negative', type: 'string', description: 'negative prompt (default: the official one)', placeholder: 'TEXT' },
];

export const BUILTIN_NOTICE =
  'no --model given: running the built-in test model (the Step-Video-T2V architecture at a tiny size with random weights, made on this machine; its videos are noise, not pictures). ' +
  'For real videos, download the released weights (https://huggingface.co/stepfun-ai/stepvideo-t2v, or stepvideo-t2v-turbo) and pass --model <dir>.';

/** The sampling part of a job request from parsed options (undefined values left out). */
export function samplingRequest(parsed: ParsedArgs): Omit<JobRequest, 'prompt'> {
  const o = parsed.options;
  const pick = <T>(name: string) => o[name] as T | undefined;
  const request: Omit<JobRequest, 'prompt'> = {};
  const set = <K extends keyof Omit<JobRequest, 'prompt'>>(key: K, value: JobRequest[K] | undefined) => {
    if (value !== undefined) request[key] = value;
  };
  set('frames', pick<number>('frames'));
  set('height', pick<number>('height'));
  set('width', pick<number>('width'));
  set('steps', pick<number>('steps'));
  set('cfgScale', pick<number>('cfg-scale'));
  set('timeShift', pick<number>('time-shift'));
  set('negativePrompt', pick<string>('negative'));
  if (o.turbo === true) request.preset = 'turbo';
  return request;
}

/** Loads the pipeline named by --model/--device/--dtype, reporting progress and the built-in notice. */
export async function loadPipeline(parsed: ParsedArgs, context: CommandContext, reporter: ProgressReporter): Promise<StepVideo> {
  const modelDir = parsed.options.model as string | undefined;
  const device = parsed.options.device as 'cpu' | 'cuda' | undefined;
  const dtypeName = parsed.options.dtype as string | undefined;
  const dtype = dtypeName === undefined ? undefined : parseDType(dtypeName);
  if (dtype !== undefined && dtype !== 'f32' && dtype !== 'bf16') throw new StepVideoError('ERR_USAGE', 'unsupported --dtype', { expected: 'float32 or bfloat16', got: dtypeName });
  if (modelDir === undefined) reporter.message(`stepvideo: ${BUILTIN_NOTICE}`);
  return StepVideo.load({
    ...(modelDir !== undefined ? { modelDir } : {}),
    ...(device !== undefined ? { device } : {}),
    ...(dtype !== undefined ? { dtype } : {}),
    signal: context.signal,
    onProgress: (p) => reporter.update(p),
  });
}

/** Fails at once (before any loading) when MP4 output is asked for and ffmpeg cannot be found. */
export function requireFfmpegFor(format: VideoFormat): void {
  if (format === 'mp4') requireFfmpeg();
}
