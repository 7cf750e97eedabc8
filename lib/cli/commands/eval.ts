// `stepvideo eval --prompts <file> --out <dir>`: one video per prompt of a prompt list (the
// Step-Video-T2V-Eval benchmark format), with thumbnails and a report (report.json, index.html).
// Re-running with the same settings skips the prompts already done.
import { StepVideoError } from '../../errors.js';
import { runEval } from '../../eval/index.js';
import { type OptionSpec, formatOptions, parseArgs, requireOption } from '../args.js';
import { MODEL_OPTIONS, SAMPLING_OPTIONS, loadPipeline, requireFfmpegFor, samplingRequest } from '../pipeline-options.js';
import { ProgressReporter } from '../progress-reporter.js';
import type { CommandContext } from './types.js';

const OPTIONS: readonly OptionSpec[] = [
  { name: 'prompts', type: 'string', description: 'prompt file, one prompt per line (e.g. Step-Video-T2V-Eval.txt)', placeholder: 'FILE' },
  { name: 'categories', type: 'string', description: 'categories as line ranges (JSON; default: categories.json beside the prompts)', placeholder: 'FILE' },
  { name: 'out', type: 'string', description: 'output folder (videos/, thumbnails/, report.json, index.html)', placeholder: 'DIR' },
  { name: 'limit', type: 'integer', description: 'only the first N prompts', placeholder: 'N' },
  { name: 'seed', type: 'integer', description: 'base seed: prompt on line n gets seed + n', default: 0, placeholder: 'N' },
  { name: 'format', type: 'string', description: 'video format', choices: ['mp4', 'png', 'y4m'], default: 'mp4' },
  ...MODEL_OPTIONS,
  ...SAMPLING_OPTIONS,
  { name: 'verbose', type: 'boolean', description: 'print stack traces with errors' },
];

export async function evalCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    context.stdout(`usage: stepvideo eval --prompts <FILE> [--categories <FILE>] --out <DIR> [options]\n\n${formatOptions(OPTIONS)}`);
    return 0;
  }
  const parsed = parseArgs(argv, OPTIONS);
  if (parsed.positionals.length > 0) throw new StepVideoError('ERR_USAGE', `unexpected argument '${parsed.positionals[0]}'`);
  const promptsFile = requireOption<string>(parsed, 'prompts');
  const outDir = requireOption<string>(parsed, 'out');
  const limit = parsed.options.limit as number | undefined;
  if (limit !== undefined && limit < 1) throw new StepVideoError('ERR_USAGE', 'option --limit must be at least 1', { got: limit });
  const baseSeed = parsed.options.seed as number;
  if (baseSeed < 0) throw new StepVideoError('ERR_USAGE', 'option --seed must not be negative', { got: baseSeed });
  const format = parsed.options.format as 'mp4' | 'png' | 'y4m';
  requireFfmpegFor(format);

  const reporter = new ProgressReporter(context.interactive, { write: (text) => process.stderr.write(text), line: context.stderr });
  const pipeline = await loadPipeline(parsed, context, reporter);
  try {
    const report = await runEval(pipeline, {
      promptsFile,
      ...(parsed.options.categories !== undefined ? { categoriesFile: parsed.options.categories as string } : {}),
      outDir,
      ...(limit !== undefined ? { limit } : {}),
      job: samplingRequest(parsed),
      baseSeed,
      format,
      signal: context.signal,
      onProgress: (p) => reporter.update(p),
      onWarning: (message) => reporter.message(`stepvideo eval: warning: ${message}`),
      onPrompt: ({ prompt, index, total, action }) =>
        reporter.message(`stepvideo eval: [${index + 1}/${total}] ${action === 'skip' ? 'skipped (already done)' : 'generating'} prompt ${prompt.line} (${prompt.category})`),
      onResult: (entry) => reporter.message(`stepvideo eval: prompt ${entry.line} ${entry.status === 'done' ? `done in ${entry.seconds} s` : `failed: ${entry.error}`}`),
    });
    reporter.finish();
    const t = report.totals;
    context.stderr(`stepvideo eval: ${t.done}/${t.prompts} done, ${t.failed} failed, ${t.skippedThisRun} skipped this run; report: ${outDir}/index.html`);
    context.stdout(JSON.stringify({ done: t.done, failed: t.failed, skipped: t.skippedThisRun, prompts: t.prompts, report: `${outDir}/report.json` }));
    return t.failed > 0 ? 1 : 0;
  } finally {
    reporter.finish();
    pipeline.dispose();
  }
}
