// `stepvideo calibrate-cache [--model DIR] [--out FILE]`: fits the 'teacache' step cache on this
// model (lib/sampler/calibrate.ts) from a few uncached sampling runs of Step-Video-T2V-Eval-style
// prompts, and writes the coefficients next to the model (stepvideo-teacache.json) or to --out.
import path from 'node:path';

import { StepVideoError } from '../../errors.js';
import { TEACACHE_FILE } from '../../sampler/calibrate.js';
import { writeFileAtomic } from '../../util/files.js';
import { type OptionSpec, formatOptions, parseArgs } from '../args.js';
import { MODEL_OPTIONS, SAMPLING_OPTIONS, loadPipeline, samplingRequest } from '../pipeline-options.js';
import { ProgressReporter } from '../progress-reporter.js';
import type { CommandContext } from './types.js';

/** Varied scenes, so the fit sees the model's range of motion rather than one prompt's. */
const CALIBRATION_PROMPTS = [
  'A red fox runs through fresh snow in a pine forest at dawn',
  'Close-up of ocean waves crashing on black volcanic rocks, slow motion',
  'A city street at night in the rain, neon signs reflected in puddles, people with umbrellas',
  'An astronaut floats inside a space station and waves at the camera',
  'Timelapse of clouds rolling over mountain peaks',
  'A chef slices vegetables quickly on a wooden board',
  'A paper boat drifts down a stream in autumn leaves',
  'Two dancers spin on an empty stage under a spotlight',
];

const OPTIONS: readonly OptionSpec[] = [
  ...MODEL_OPTIONS,
  ...SAMPLING_OPTIONS.filter((o) => o.name !== 'cache' && o.name !== 'cache-file' && o.name !== 'negative'),
  { name: 'prompts', type: 'integer', description: `sampling runs to fit from (1..${CALIBRATION_PROMPTS.length})`, default: 4, placeholder: 'N' },
  { name: 'out', type: 'string', description: `where to write the calibration (default: ${TEACACHE_FILE} in the model folder)`, placeholder: 'FILE' },
  { name: 'verbose', type: 'boolean', description: 'print stack traces with errors' },
];

export async function calibrateCacheCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    context.stdout(`usage: stepvideo calibrate-cache [--model DIR] [--out FILE] [options]\n\n${formatOptions(OPTIONS)}`);
    return 0;
  }
  const parsed = parseArgs(argv, OPTIONS);
  if (parsed.positionals.length > 0) throw new StepVideoError('ERR_USAGE', `unexpected argument '${parsed.positionals[0]}'`);
  const count = parsed.options.prompts as number;
  if (count < 1 || count > CALIBRATION_PROMPTS.length) throw new StepVideoError('ERR_USAGE', `option --prompts must be in [1, ${CALIBRATION_PROMPTS.length}]`, { got: count });

  const reporter = new ProgressReporter(context.interactive, { write: (text) => process.stderr.write(text), line: context.stderr });
  const sv = await loadPipeline(parsed, context, reporter);
  try {
    const out = path.resolve((parsed.options.out as string | undefined) ?? path.join(sv.modelDir, TEACACHE_FILE));
    const calibration = await sv.calibrateCache({
      ...samplingRequest(parsed),
      prompts: CALIBRATION_PROMPTS.slice(0, count),
      signal: context.signal,
      onRun: (done, total) => reporter.message(`stepvideo: calibration run ${done}/${total} done`),
    });
    await writeFileAtomic(out, `${JSON.stringify(calibration, null, 2)}\n`);
    const { cond, uncond } = calibration.fit;
    reporter.message(`stepvideo: teacache fitted on ${cond.samples} step pairs (rms residual: cond ${cond.rmse.toPrecision(3)}, uncond ${uncond.rmse.toPrecision(3)}); use it with --cache teacache[:threshold]`);
    context.stdout(out);
    return 0;
  } finally {
    reporter.finish();
    sv.dispose();
  }
}
