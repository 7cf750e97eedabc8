// `stepvideo generate "<prompt>"`: prompt to video file (MP4 through ffmpeg, Y4M, or PNG frames)
// with the whole pipeline: caption encoders, the sampler over the DiT, the VAE decoding chunk by
// chunk while the file is written. Progress on stderr, the written path on stdout. Ctrl-C stops the
// job, removes the partial output and exits 130.
import { randomBytes } from 'node:crypto';

import { StepVideoError } from '../../errors.js';
import type { PreviewEvent } from '../../pipeline/preview.js';
import { formatDuration } from '../../pipeline/progress.js';
import { writeFileAtomic } from '../../util/files.js';
import { type OptionSpec, formatOptions, parseArgs } from '../args.js';
import { defaultOutputName, resolveFormat } from '../output.js';
import { MODEL_OPTIONS, SAMPLING_OPTIONS, describeDiTWeights, loadPipeline, requireFfmpegFor, samplingRequest } from '../pipeline-options.js';
import { ProgressReporter } from '../progress-reporter.js';
import type { CommandContext } from './types.js';

const OPTIONS: readonly OptionSpec[] = [
  ...MODEL_OPTIONS,
  { name: 'out', type: 'string', description: 'output file (.mp4, .y4m) or folder (PNG frames) (default: <prompt>-<time>.mp4 here)', placeholder: 'FILE' },
  { name: 'format', type: 'string', description: 'mp4 (H.264 via ffmpeg), png (frames, no ffmpeg) or y4m (no ffmpeg) (default: from --out, else mp4)', choices: ['mp4', 'png', 'y4m'] },
  ...SAMPLING_OPTIONS,
  { name: 'seed', type: 'integer', description: 'noise seed (default: a random one, printed)', placeholder: 'N' },
  { name: 'no-crop', type: 'boolean', description: 'keep the full frame (default: centre crop to 540x960 as the official writer)' },
  { name: 'no-denoise', type: 'boolean', description: 'MP4 without the official atadenoise filter' },
  { name: 'lora', type: 'string', description: 'apply a LoRA adapter to the DiT (a safetensors file in PEFT/diffusers naming), optionally scaled: FILE[:scale]', placeholder: 'FILE[:S]' },
  { name: 'preview', type: 'string', description: 'write a live preview of the video taking shape to this PNG file as it samples (replaced each time)', placeholder: 'FILE' },
  { name: 'preview-every', type: 'integer', description: 'steps between previews (default: a tenth of the steps)', placeholder: 'N' },
  { name: 'verbose', type: 'boolean', description: 'print stack traces with errors' },
];

export function generateUsage(): string {
  return `usage: stepvideo generate "<prompt>" [options]\n\n${formatOptions(OPTIONS)}`;
}

export async function generateCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    context.stdout(generateUsage());
    return 0;
  }
  const parsed = parseArgs(argv, OPTIONS);
  const prompt = parsed.positionals.join(' ').trim();
  if (prompt === '') throw new StepVideoError('ERR_USAGE', 'missing the prompt: stepvideo generate "<prompt>" [options] (see --help)');
  const given = parsed.options.seed as number | undefined;
  if (given !== undefined && given < 0) throw new StepVideoError('ERR_USAGE', 'option --seed must not be negative', { got: given });
  // Chosen here, not in the pipeline, so that it is known (and printed) even if the job fails.
  const seed = given ?? randomBytes(4).readUInt32LE(0);
  const format = resolveFormat(parsed.options.format as string | undefined, parsed.options.out as string | undefined);
  requireFfmpegFor(format);
  const out = (parsed.options.out as string | undefined) ?? defaultOutputName(prompt, format === 'png' ? '' : `.${format}`);

  const previewFile = parsed.options.preview as string | undefined;
  const every = parsed.options['preview-every'] as number | undefined;
  if (every !== undefined && (previewFile === undefined || every < 1)) throw new StepVideoError('ERR_USAGE', every < 1 ? 'option --preview-every must be at least 1' : 'option --preview-every needs --preview FILE');
  const reporter = new ProgressReporter(context.interactive, { write: (text) => process.stderr.write(text), line: context.stderr });
  const started = performance.now();
  const sv = await loadPipeline(parsed, context, reporter);
  try {
    reporter.message(`stepvideo: seed ${seed}`);
    const video = await sv.generate({
      prompt,
      ...samplingRequest(parsed),
      seed,
      crop: parsed.options['no-crop'] !== true,
      ...(parsed.options.lora !== undefined ? { lora: parsed.options.lora as string } : {}),
      signal: context.signal,
      onProgress: (p) => reporter.update(p),
      onWarning: (message) => reporter.message(`stepvideo: warning: ${message}`),
      ...(previewFile !== undefined
        ? { ...(every !== undefined ? { previewEvery: every } : {}), onPreview: (p: PreviewEvent) => writeFileAtomic(previewFile, p.png) }
        : {}),
    });
    const { info } = video;
    reporter.message(`stepvideo: ${info.frames} frames of ${info.width}x${info.height}, ${info.settings.steps} steps, cfg ${info.settings.cfgScale}, shift ${info.settings.timeShift} (${sv.device.name}, ${sv.dtype === 'f32' ? 'float32' : 'bfloat16'}${describeDiTWeights(sv)})`);
    const written = await video.save(out, { format, signal: context.signal, ...(parsed.options['no-denoise'] === true ? { denoise: false } : {}) });
    reporter.finish();
    context.stderr(`denoise: ${info.evaluations} of ${info.maxEvaluations} model evaluations`);
    context.stderr(`stepvideo: done in ${formatDuration(performance.now() - started)}`);
    context.stdout(written);
    return 0;
  } finally {
    reporter.finish();
    sv.dispose();
  }
}
