// Options and helpers shared by the commands that run the whole pipeline (generate, serve, eval):
// the model folder (or the built-in test model), the device and dtype, how the DiT holds its
// weights (FP8, streaming), the sampling settings, and the early checks that should fail before
// minutes of loading (ffmpeg, formats).
import type { DeviceSpec } from '../device.js';
import { parseDType } from '../dtype.js';
import { StepVideoError, isStepVideoError } from '../errors.js';
import { STREAMING_BUDGET_TOO_SMALL, type StreamingRequest } from '../pipeline/memory.js';
import { BUILTIN_MODEL_WARNING, type StepVideoLoadOptions, StepVideo } from '../pipeline/pipeline.js';
import type { JobRequest } from '../pipeline/options.js';
import { type VideoFormat, requireFfmpeg } from '../video/writers.js';
import type { OptionSpec, ParsedArgs } from './args.js';
import type { CommandContext } from './commands/types.js';
import type { ProgressReporter } from './progress-reporter.js';

/** Where the parts run: --sequence-parallel, --cfg-parallel (`stepvideo run dit` and `run sample` take these two as well), --devices, --text-device, --vae-device. */
export const PARALLEL_OPTIONS: readonly OptionSpec[] = [
  { name: 'sequence-parallel', type: 'integer', description: "split each DiT forward's tokens over N ranks (Ulysses; N divides the 48 heads; on one device: the simulation of N devices)", placeholder: 'N' },
  { name: 'cfg-parallel', type: 'boolean', description: 'run the conditional and unconditional DiT rows on two groups of ranks at once' },
  { name: 'devices', type: 'string', description: 'the device of each DiT rank, comma-separated, the first being --device (e.g. cuda:0,cuda:1); default: all on --device', placeholder: 'LIST' },
  { name: 'text-device', type: 'string', description: 'run the caption encoders on this device (cpu, cuda:N) instead of --device', placeholder: 'DEVICE' },
  { name: 'vae-device', type: 'string', description: 'run the VAE decoder on this device instead of --device; a comma-separated list shares the chunks between those devices', placeholder: 'DEVICE' },
];

export const MODEL_OPTIONS: readonly OptionSpec[] = [
  { name: 'model', type: 'string', description: 'model folder in the released layout (default: the built-in test model)', placeholder: 'DIR' },
  { name: 'device', type: 'string', description: 'cpu, cuda or cuda:N (default: cuda when a GPU answers)', placeholder: 'cpu|cuda|cuda:N' },
  { name: 'dtype', type: 'string', description: 'compute precision (default: float32 on cpu, bfloat16 on cuda)', choices: ['float32', 'bfloat16'] },
  { name: 'weights', type: 'string', description: 'DiT block weights: bf16 as released, held in the compute precision (default), or fp8 (quantized at load, about half the memory)', choices: ['bf16', 'fp8'] },
  { name: 'stream-weights', type: 'number', description: 'stream the DiT block weights from host memory when they would take more than GB (10^9 bytes) of device memory', placeholder: 'GB' },
  ...PARALLEL_OPTIONS,
];

/** The parallel layout and placement from those options, as StepVideo.load takes them. */
export function parallelOptions(options: Record<string, unknown>): Pick<StepVideoLoadOptions, 'sequenceParallel' | 'cfgParallel' | 'devices' | 'placement'> {
  const degree = options['sequence-parallel'];
  if (degree !== undefined && (typeof degree !== 'number' || !Number.isInteger(degree) || degree < 1)) {
    throw new StepVideoError('ERR_USAGE', 'option --sequence-parallel needs a positive integer', { got: degree as string });
  }
  return {
    ...(degree !== undefined ? { sequenceParallel: degree as number } : {}),
    ...(options['cfg-parallel'] === true ? { cfgParallel: true } : {}),
    ...(typeof options.devices === 'string' ? { devices: deviceList(options.devices) } : {}),
    ...(typeof options['text-device'] === 'string' || typeof options['vae-device'] === 'string'
      ? {
          placement: {
            ...(typeof options['text-device'] === 'string' ? { text: options['text-device'] as DeviceSpec } : {}),
            ...(typeof options['vae-device'] === 'string' ? { vae: deviceList(options['vae-device']) } : {}),
          },
        }
      : {}),
  };
}

/** "cuda:0,cuda:1" → ['cuda:0', 'cuda:1'] (checked when the pipeline resolves them). */
function deviceList(text: string): DeviceSpec[] {
  return text.split(',').map((d) => d.trim()) as DeviceSpec[];
}

/** Bytes per GB on the command line (decimal, as GPU memory is sold). */
const GB = 1e9;

/** The DiT weight options (--weights, --stream-weights) as StepVideo.load takes them. */
export function ditWeightOptions(parsed: ParsedArgs): Pick<StepVideoLoadOptions, 'weights' | 'streaming'> {
  const weights = parsed.options.weights as 'bf16' | 'fp8' | undefined;
  const budgetGB = parsed.options['stream-weights'] as number | undefined;
  if (budgetGB !== undefined && !(budgetGB > 0)) throw new StepVideoError('ERR_USAGE', 'option --stream-weights needs a positive number of GB', { got: budgetGB });
  const streaming: StreamingRequest | undefined = budgetGB === undefined ? undefined : { deviceBudgetBytes: Math.round(budgetGB * GB) };
  return {
    ...(weights !== undefined ? { weights: weights === 'fp8' ? 'fp8' : 'model' } : {}),
    ...(streaming !== undefined ? { streaming } : {}),
  };
}

export const SAMPLING_OPTIONS: readonly OptionSpec[] = [
  { name: 'frames', type: 'integer', description: 'frames, floored to a multiple of 17 (default 204; built-in model 34)', placeholder: 'N' },
  { name: 'height', type: 'integer', description: 'height in pixels, floored to a multiple of 16 (default 544; built-in 128)', placeholder: 'H' },
  { name: 'width', type: 'integer', description: 'width in pixels, floored to a multiple of 16 (default 992; built-in 128)', placeholder: 'W' },
  { name: 'steps', type: 'integer', description: 'denoising steps (default 50; 15 with --turbo)', placeholder: 'N' },
  { name: 'cfg-scale', type: 'number', description: 'classifier-free guidance scale (default 9; 5 with --turbo)', placeholder: 'G' },
  { name: 'time-shift', type: 'number', description: 'schedule time shift (default 13; 17 with --turbo)', placeholder: 'S' },
  { name: 'turbo', type: 'boolean', description: 'Step-Video-T2V-Turbo sampling settings (15 steps, cfg 5, shift 17)' },
  { name: 'negative', type: 'string', description: 'negative prompt (default: the official one)', placeholder: 'TEXT' },
  { name: 'cache', type: 'string', description: 'step caching: skip model evaluations while the output is predictable; auto (no calibration) or teacache (after stepvideo calibrate-cache), with an optional :threshold (default auto 0.05, teacache 0.1)', placeholder: 'METHOD[:T]' },
  { name: 'cache-file', type: 'string', description: "teacache's calibration file (default: stepvideo-teacache.json in the model folder)", placeholder: 'FILE' },
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
  set('cache', pick<string>('cache'));
  set('cacheCoefficients', pick<string>('cache-file'));
  if (o.turbo === true) request.preset = 'turbo';
  return request;
}

/** Loads the pipeline named by --model/--device/--dtype/--weights/--stream-weights, reporting progress, warnings and the built-in notice. */
export async function loadPipeline(parsed: ParsedArgs, context: CommandContext, reporter: ProgressReporter): Promise<StepVideo> {
  const modelDir = parsed.options.model as string | undefined;
  const device = parsed.options.device as string | undefined;
  if (device !== undefined && !/^(cpu|cuda(:\d+)?)$/.test(device)) throw new StepVideoError('ERR_USAGE', 'option --device has an unknown value', { expected: 'cpu | cuda | cuda:N', got: device });
  const dtypeName = parsed.options.dtype as string | undefined;
  const dtype = dtypeName === undefined ? undefined : parseDType(dtypeName);
  if (dtype !== undefined && dtype !== 'f32' && dtype !== 'bf16') throw new StepVideoError('ERR_USAGE', 'unsupported --dtype', { expected: 'float32 or bfloat16', got: dtypeName });
  const ditWeights = ditWeightOptions(parsed);
  if (modelDir === undefined) reporter.message(`stepvideo: ${BUILTIN_NOTICE}`);
  try {
    return await StepVideo.load({
      ...(modelDir !== undefined ? { modelDir } : {}),
      ...(device !== undefined ? { device: device as DeviceSpec } : {}),
      ...(dtype !== undefined ? { dtype } : {}),
      ...ditWeights,
      ...parallelOptions(parsed.options),
      signal: context.signal,
      onProgress: (p) => reporter.update(p),
      // The built-in model's notice is printed above, in the CLI's words.
      onWarning: (message) => {
        if (message !== BUILTIN_MODEL_WARNING) reporter.message(`stepvideo: warning: ${message}`);
      },
    });
  } catch (error) {
    // The budget was given in GB as --stream-weights: say so.
    if (isStepVideoError(error, 'ERR_ARGUMENT') && error.message.startsWith(STREAMING_BUDGET_TOO_SMALL)) {
      throw new StepVideoError('ERR_USAGE', `option --stream-weights ${String(parsed.options['stream-weights'])} (GB) is too small: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

/** How the DiT holds its weights, for the commands' summary lines: '' by default, else ', FP8 weights, streamed'. */
export function describeDiTWeights(sv: StepVideo): string {
  const { weights, streaming } = sv.dit.execution;
  return `${weights === 'fp8' ? ', FP8 weights' : ''}${streaming ? ', streamed weights' : ''}`;
}

/** Fails at once (before any loading) when MP4 output is asked for and ffmpeg cannot be found. */
export function requireFfmpegFor(format: VideoFormat): void {
  if (format === 'mp4') requireFfmpeg();
}
