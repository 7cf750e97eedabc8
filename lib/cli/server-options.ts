// Options `serve` and `worker` share: the queue's key prefix, the request limits both check (a
// worker checks a job again with its own), and the log switches.
import { DEFAULT_LIMITS, type ServerLimits } from '../server/requests.js';
import { StepVideoError } from '../errors.js';
import type { OptionSpec } from './args.js';

export const QUEUE_PREFIX_OPTION: OptionSpec = { name: 'queue-prefix', type: 'string', description: 'Redis key prefix of the queue (API nodes and workers must use the same)', default: 'stepvideo', placeholder: 'NAME' };

export const PREVIEWS_OPTION: OptionSpec = { name: 'previews', type: 'integer', description: 'steps between live previews (`preview` events with a small PNG on /v1/videos/{id}/events); 0: none', default: 5, placeholder: 'N' };

/** --previews, checked. */
export function previewEvery(options: Record<string, unknown>): number {
  const every = options.previews as number;
  if (every < 0) throw new StepVideoError('ERR_USAGE', 'option --previews must be 0 (none) or a number of steps', { got: every });
  return every;
}

export const REQUEST_LIMIT_OPTIONS: readonly OptionSpec[] = [
  { name: 'max-frames', type: 'integer', description: 'largest frames a job may ask for', default: DEFAULT_LIMITS.maxFrames, placeholder: 'N' },
  { name: 'max-size', type: 'integer', description: 'largest height/width a job may ask for', default: DEFAULT_LIMITS.maxSize, placeholder: 'N' },
  { name: 'max-steps', type: 'integer', description: 'largest steps a job may ask for', default: DEFAULT_LIMITS.maxSteps, placeholder: 'N' },
  { name: 'quiet', type: 'boolean', description: 'no per-job log lines' },
  { name: 'verbose', type: 'boolean', description: 'print stack traces with errors' },
];

/** The request limits from those options, each checked to be at least 1. */
export function requestLimits(options: Record<string, unknown>): Pick<ServerLimits, 'maxFrames' | 'maxSize' | 'maxSteps'> {
  for (const name of ['max-frames', 'max-size', 'max-steps']) {
    if ((options[name] as number) < 1) throw new StepVideoError('ERR_USAGE', `option --${name} must be at least 1`, { got: options[name] as number });
  }
  return { maxFrames: options['max-frames'] as number, maxSize: options['max-size'] as number, maxSteps: options['max-steps'] as number };
}
