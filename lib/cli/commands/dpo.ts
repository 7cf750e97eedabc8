// `stepvideo dpo --pairs pairs.jsonl --out lora.safetensors [--model DIR] [options]`: Video-DPO
// fine-tuning of the DiT with a LoRA adapter (lib/training/). Prompts are encoded once, videos
// VAE-encoded once and cached (lib/training/pairs.ts); each step prints the loss, the implicit
// reward accuracy and margin; checkpoints are written atomically (every --save-every steps, at the
// end, and on Ctrl-C); --resume continues one. The last line: `dpo: <N> steps, loss <first> ->
// <last>, reward accuracy <P>%` (the accuracy over the last 10 steps, or all when fewer).
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

import { StepVideoError } from '../../errors.js';
import { LORA_LINEARS, type LoraLinear } from '../../models/dit/lora.js';
import { VideoVAE } from '../../models/vae/index.js';
import type { StepVideo } from '../../pipeline/index.js';
import { type VideoEncoding, loadLatents, readPairs } from '../../training/pairs.js';
import { DPO_DEFAULTS, type PreparedPair, saveLora, trainDpo } from '../../training/trainer.js';
import { type OptionSpec, formatOptions, parseArgs } from '../args.js';
import { MODEL_OPTIONS, loadPipeline } from '../pipeline-options.js';
import { ProgressReporter } from '../progress-reporter.js';
import type { CommandContext } from './types.js';

const OPTIONS: readonly OptionSpec[] = [
  ...MODEL_OPTIONS.filter((o) => !['sequence-parallel', 'cfg-parallel', 'devices', 'vae-device'].includes(o.name)),
  { name: 'pairs', type: 'string', description: 'preference pairs: one {"prompt", "chosen", "rejected"} per line; videos (MP4, Y4M, a PNG folder) or latents (.safetensors)', placeholder: 'FILE' },
  { name: 'out', type: 'string', description: 'where to write the trained LoRA (safetensors, PEFT names; generate --lora reads it)', placeholder: 'FILE' },
  { name: 'steps', type: 'integer', description: 'optimizer steps (one pair each)', default: 100, placeholder: 'N' },
  { name: 'rank', type: 'integer', description: `LoRA rank (default ${DPO_DEFAULTS.rank})`, placeholder: 'R' },
  { name: 'alpha', type: 'number', description: 'LoRA alpha: the scale is alpha / rank (default: the rank)', placeholder: 'A' },
  { name: 'beta', type: 'number', description: `DPO beta (default ${DPO_DEFAULTS.beta})`, placeholder: 'B' },
  { name: 'lr', type: 'number', description: `AdamW learning rate (default ${DPO_DEFAULTS.lr})`, placeholder: 'LR' },
  { name: 'seed', type: 'integer', description: 'seed of the adapter, the pair order, noise levels and noise (the same seed gives the same adapter)', default: 0, placeholder: 'S' },
  { name: 'time-shift', type: 'number', description: `the time shift the noise levels are drawn through (default ${DPO_DEFAULTS.timeShift}, the sampler's)`, placeholder: 'S' },
  { name: 'max-grad-norm', type: 'number', description: `clip the gradients' global norm (default ${DPO_DEFAULTS.maxGradNorm}; 0: off)`, placeholder: 'X' },
  { name: 'targets', type: 'string', description: `the Linears to adapt, comma-separated (default all: ${LORA_LINEARS.join(',')})`, placeholder: 'LIST' },
  { name: 'resume', type: 'string', description: 'continue from a checkpoint (same pairs and seed)', placeholder: 'FILE' },
  { name: 'checkpoint', type: 'string', description: 'checkpoint file (default: <out>.checkpoint.safetensors)', placeholder: 'FILE' },
  { name: 'save-every', type: 'integer', description: 'write a checkpoint every N steps (0: only at the end and on Ctrl-C)', default: 50, placeholder: 'N' },
  { name: 'offload-checkpoints', type: 'boolean', description: 'keep the checkpointed block inputs in host memory (less GPU memory, a transfer per block)' },
  { name: 'latent-cache', type: 'string', description: 'folder for the VAE-encoded videos (default: .stepvideo-latents beside the pairs file)', placeholder: 'DIR' },
  { name: 'verbose', type: 'boolean', description: 'print stack traces with errors' },
];

export async function dpoCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    context.stdout(`usage: stepvideo dpo --pairs FILE --out FILE [--model DIR] [options]\n\n${formatOptions(OPTIONS)}`);
    return 0;
  }
  const parsed = parseArgs(argv, OPTIONS);
  if (parsed.positionals.length > 0) throw new StepVideoError('ERR_USAGE', `unexpected argument '${parsed.positionals[0]}'`);
  const option = <T>(name: string) => parsed.options[name] as T | undefined;
  const pairsFile = option<string>('pairs');
  const out = option<string>('out');
  if (pairsFile === undefined) throw new StepVideoError('ERR_USAGE', 'missing required option --pairs');
  if (out === undefined) throw new StepVideoError('ERR_USAGE', 'missing required option --out');
  const steps = option<number>('steps')!;
  if (steps < 1) throw new StepVideoError('ERR_USAGE', 'option --steps must be at least 1', { got: steps });
  const targets = parseTargets(option<string>('targets'));
  const pairs = await readPairs(pairsFile);
  const checkpoint = path.resolve(option<string>('checkpoint') ?? `${out.replace(/\.safetensors$/, '')}.checkpoint.safetensors`);

  const reporter = new ProgressReporter(context.interactive, { write: (text) => process.stderr.write(text), line: context.stderr });
  const sv = await loadPipeline(parsed, context, reporter);
  let encoder: VideoVAE | undefined;
  try {
    // Prompts once each; videos once each (the encoder loaded only when a pair names a video).
    const cacheDir = path.resolve(option<string>('latent-cache') ?? path.join(path.dirname(path.resolve(pairsFile)), '.stepvideo-latents'));
    const encoding = async (): Promise<VideoEncoding> => {
      encoder ??= await VideoVAE.load(path.join(sv.modelDir, 'vae'), { device: sv.vae.device, dtype: sv.vae.dtype, parts: ['encoder'], signal: context.signal });
      return { vae: encoder, cacheDir, vaeIdentity: await folderIdentity(path.join(sv.modelDir, 'vae')), signal: context.signal, onEncode: (file) => reporter.message(`stepvideo: encoded ${file}`) };
    };
    const prepared = await preparePairs(sv, pairs, encoding, context.signal);
    encoder?.dispose();
    encoder = undefined;
    reporter.message(`stepvideo: ${pairs.length} pairs, latents ${prepared.map((p) => `[${p.chosen.shape.slice(1).join('x')}]`).filter((s, i, all) => all.indexOf(s) === i).join(', ')}; training ${steps} steps on ${sv.dit.device.name}`);

    const result = await trainDpo(sv.dit, prepared, {
      steps,
      ...defined({ rank: option<number>('rank'), alpha: option<number>('alpha'), beta: option<number>('beta'), lr: option<number>('lr'), timeShift: option<number>('time-shift'), maxGradNorm: option<number>('max-grad-norm'), resume: option<string>('resume') }),
      seed: option<number>('seed')!,
      ...(targets ? { targets } : {}),
      ...(option<boolean>('offload-checkpoints') ? { offloadCheckpoints: true } : {}),
      checkpoint: { file: checkpoint, every: option<number>('save-every')! },
      signal: context.signal,
      onStep: (p) => reporter.message(`step ${p.step}/${p.steps}: loss ${p.loss.toFixed(4)}, reward accuracy ${(100 * p.accuracy).toFixed(0)}%, margin ${p.margin.toExponential(2)}, sigma ${p.sigma.toFixed(3)}, |grad| ${p.gradNorm.toExponential(2)}${p.clipped ? ' (clipped)' : ''}, ${(p.elapsedMs / 1000).toFixed(2)} s`),
      onCheckpoint: (file, step) => reporter.message(`stepvideo: checkpoint at step ${step} -> ${file}`),
    });
    try {
      await saveLora(path.resolve(out), result.lora, { steps: String(result.steps), seed: String(option<number>('seed')) });
      const { history } = result;
      const window = history.slice(-10);
      const accuracy = (100 * window.reduce((a, h) => a + h.accuracy, 0)) / Math.max(1, window.length);
      context.stdout(path.resolve(out));
      reporter.message(`dpo: ${result.steps} steps, loss ${history[0]!.loss.toFixed(4)} -> ${history.at(-1)!.loss.toFixed(4)}, reward accuracy ${accuracy.toFixed(0)}%`);
    } finally {
      result.lora.dispose();
    }
    return 0;
  } finally {
    encoder?.dispose();
    reporter.finish();
    sv.dispose();
  }
}

function parseTargets(list: string | undefined): LoraLinear[] | undefined {
  if (list === undefined) return undefined;
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const name of names) {
    if (!(LORA_LINEARS as readonly string[]).includes(name)) throw new StepVideoError('ERR_USAGE', `option --targets names an unknown Linear '${name}'`, { expected: LORA_LINEARS.join(', ') });
  }
  if (names.length === 0) throw new StepVideoError('ERR_USAGE', 'option --targets is empty');
  return names as LoraLinear[];
}

async function preparePairs(sv: StepVideo, pairs: Awaited<ReturnType<typeof readPairs>>, encoding: () => Promise<VideoEncoding>, signal: AbortSignal): Promise<PreparedPair[]> {
  const texts = new Map<string, PreparedPair['text']>();
  const prepared: PreparedPair[] = [];
  for (const pair of pairs) {
    let text = texts.get(pair.prompt);
    if (text === undefined) {
      const encoded = await sv.text.encodePrompts([pair.prompt], { signal });
      using y = encoded.y;
      using clip = encoded.clip;
      text = { y: { dtype: 'f32', shape: [...y.shape], data: await y.toFloat32() }, clip: { dtype: 'f32', shape: [...clip.shape], data: await clip.toFloat32() }, mask: encoded.yMask };
      texts.set(pair.prompt, text);
    }
    const channels = sv.dit.config.inChannels;
    prepared.push({ chosen: await loadLatents(pair.chosen, channels, encoding), rejected: await loadLatents(pair.rejected, channels, encoding), text });
  }
  return prepared;
}

/** The VAE folder's files with their sizes and times: the latent cache's key changes with the weights. */
async function folderIdentity(dir: string): Promise<string> {
  const names = (await readdir(dir)).sort();
  const parts = await Promise.all(names.map(async (name) => {
    const info = await stat(path.join(dir, name));
    return `${name}:${info.size}:${info.mtimeMs}`;
  }));
  return `${path.resolve(dir)}|${parts.join('|')}`;
}

function defined<T extends Record<string, unknown>>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}
