// The evaluation harness: generates one video per prompt of a prompt list (the Step-Video-T2V-Eval
// benchmark: one prompt per line, categories as line ranges in a JSON file), with thumbnails and a
// report (report.json and a static index.html) rewritten after every prompt. Resumable: a prompt
// whose video exists from a run with the same settings is skipped.
//
//   <out>/videos/<NNN>.mp4            NNN = the prompt's line number
//   <out>/thumbnails/<NNN>-first.png, <NNN>-middle.png
//   <out>/report.json, <out>/index.html
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';

import { StepVideoError, asStepVideoError, isStepVideoError, throwIfAborted } from '../errors.js';
import type { JobRequest } from '../pipeline/options.js';
import type { StepVideo } from '../pipeline/pipeline.js';
import type { PipelineProgress } from '../pipeline/progress.js';
import type { VideoChunk } from '../pipeline/video.js';
import { writeFileAtomic } from '../util/files.js';
import type { PreviewEvent } from '../pipeline/preview.js';
import { encodePng } from '../video/png.js';
import type { VideoFormat } from '../video/writers.js';
import { renderReportHtml } from './html.js';

export interface EvalPrompt {
  /** 1-based line number in the prompts file (the prompt's id). */
  line: number;
  prompt: string;
  category: string;
}

export interface EvalCategory {
  name: string;
  firstLine: number;
  lastLine: number;
}

export interface EvalEntry {
  line: number;
  id: string;
  prompt: string;
  category: string;
  status: 'done' | 'failed';
  seed: string;
  /** Paths relative to the output folder. */
  video?: string;
  thumbnails?: string[];
  /** The live preview after the last step (the latent-to-RGB map of the middle frame), relative to the output folder. */
  preview?: string;
  seconds: number;
  error?: string;
  configKey: string;
  finishedAt: string;
}

export interface EvalReport {
  format: 'stepvideo-eval-report';
  version: 1;
  promptsFile: string;
  categoriesFile: string | null;
  config: Record<string, unknown>;
  configKey: string;
  updatedAt: string;
  entries: EvalEntry[];
  categories: Array<{ name: string; prompts: number; done: number; failed: number }>;
  totals: { prompts: number; done: number; failed: number; skippedThisRun: number; seconds: number };
}

export interface EvalOptions {
  promptsFile: string;
  /** Category line ranges; default `categories.json` beside the prompts file when it exists. */
  categoriesFile?: string;
  outDir: string;
  /** Only the first `limit` prompts of the file. */
  limit?: number;
  /** Sampling settings for every prompt; prompt n gets seed baseSeed + n (its line number). */
  job: Omit<JobRequest, 'prompt' | 'seed'> & { crop?: boolean };
  baseSeed: number;
  format: VideoFormat;
  signal?: AbortSignal;
  onProgress?: (progress: PipelineProgress) => void;
  /** Keep the last live preview of each video in the report (default true). */
  preview?: boolean;
  onWarning?: (message: string) => void;
  /** Called before each prompt: whether it runs or is skipped. */
  onPrompt?: (event: { prompt: EvalPrompt; index: number; total: number; action: 'run' | 'skip' }) => void;
  /** Called after each prompt that ran. */
  onResult?: (entry: EvalEntry) => void;
}

/** The prompts of a file: one per line, stripped, blank lines left out (ids keep their line numbers). */
export function parsePrompts(text: string, categories: readonly EvalCategory[] = []): EvalPrompt[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);
  const prompts: EvalPrompt[] = [];
  lines.forEach((raw, i) => {
    const prompt = raw.trim();
    if (prompt === '') return;
    const line = i + 1;
    const category = categories.find((c) => line >= c.firstLine && line <= c.lastLine)?.name ?? 'Uncategorized';
    prompts.push({ line, prompt, category });
  });
  return prompts;
}

/** `{ "categories": [{ "name", "first_line", "last_line" }] }` (1-based, inclusive). */
export function parseCategories(json: unknown, file = 'categories.json'): EvalCategory[] {
  const list = (json as { categories?: unknown } | null)?.categories;
  if (!Array.isArray(list)) throw new StepVideoError('ERR_ARGUMENT', 'categories file must hold { "categories": [...] }', { file });
  return list.map((c: unknown, i) => {
    const { name, first_line: firstLine, last_line: lastLine } = (c ?? {}) as Record<string, unknown>;
    if (typeof name !== 'string' || !Number.isSafeInteger(firstLine) || !Number.isSafeInteger(lastLine) || (firstLine as number) < 1 || (lastLine as number) < (firstLine as number)) {
      throw new StepVideoError('ERR_ARGUMENT', `category ${i} must be { "name": string, "first_line": n, "last_line": m >= n }`, { file, got: c });
    }
    return { name, firstLine: firstLine as number, lastLine: lastLine as number };
  });
}

export const promptId = (line: number): string => String(line).padStart(3, '0');

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', `cannot read the ${what}`, { file });
  }
}

async function readJson(file: string, what: string): Promise<unknown> {
  const text = await readText(file, what);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new StepVideoError('ERR_ARGUMENT', `the ${what} is not valid JSON`, { file, got: (error as Error).message });
  }
}

function summarize(report: EvalReport, prompts: readonly EvalPrompt[], skipped: number): void {
  const byLine = new Map(report.entries.map((e) => [e.line, e]));
  const names = [...new Set(prompts.map((p) => p.category))];
  report.categories = names.map((name) => {
    const inCategory = prompts.filter((p) => p.category === name);
    const entries = inCategory.map((p) => byLine.get(p.line)).filter((e): e is EvalEntry => e !== undefined);
    return { name, prompts: inCategory.length, done: entries.filter((e) => e.status === 'done').length, failed: entries.filter((e) => e.status === 'failed').length };
  });
  const done = report.entries.filter((e) => e.status === 'done');
  report.totals = {
    prompts: prompts.length,
    done: done.length,
    failed: report.entries.filter((e) => e.status === 'failed').length,
    skippedThisRun: skipped,
    seconds: Number(done.reduce((sum, e) => sum + e.seconds, 0).toFixed(2)),
  };
  report.updatedAt = new Date().toISOString();
}

async function writeReport(outDir: string, report: EvalReport): Promise<void> {
  await writeFileAtomic(path.join(outDir, 'report.json'), `${JSON.stringify(report, null, 1)}\n`);
  await writeFileAtomic(path.join(outDir, 'index.html'), renderReportHtml(report));
}

/** Runs (or resumes) an evaluation; returns the final report. ERR_ABORTED stops it with the report saved. */
export async function runEval(pipeline: StepVideo, options: EvalOptions): Promise<EvalReport> {
  const { outDir, signal } = options;
  const promptsFile = path.resolve(options.promptsFile);
  const besideCategories = path.join(path.dirname(promptsFile), 'categories.json');
  const categoriesFile = options.categoriesFile !== undefined ? path.resolve(options.categoriesFile) : existsSync(besideCategories) ? besideCategories : undefined;
  const categories = categoriesFile ? parseCategories(await readJson(categoriesFile, 'categories file'), categoriesFile) : [];
  const all = parsePrompts(await readText(promptsFile, 'prompts file'), categories);
  if (all.length === 0) throw new StepVideoError('ERR_ARGUMENT', 'the prompts file holds no prompt', { file: promptsFile });
  if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit < 1)) throw new StepVideoError('ERR_ARGUMENT', 'limit must be a positive integer', { got: options.limit });
  const prompts = options.limit !== undefined ? all.slice(0, options.limit) : all;

  const config = {
    model: pipeline.builtin ? 'built-in test model' : pipeline.modelDir,
    device: pipeline.device.name,
    dtype: pipeline.dtype,
    // FP8 weights change the videos (streaming does not); absent for the default, so earlier reports keep their key.
    ...(pipeline.dit.execution.weights === 'fp8' ? { weights: 'fp8' } : {}),
    ...options.job,
    baseSeed: options.baseSeed,
    format: options.format,
  };
  const configKey = createHash('sha256').update(JSON.stringify(config)).digest('hex').slice(0, 16);
  await mkdir(path.join(outDir, 'videos'), { recursive: true });
  await mkdir(path.join(outDir, 'thumbnails'), { recursive: true });

  // Earlier entries are kept (also those made with other settings, until redone).
  const reportFile = path.join(outDir, 'report.json');
  const previous = existsSync(reportFile) ? ((await readJson(reportFile, 'existing report')) as Partial<EvalReport>) : undefined;
  const entries = new Map<number, EvalEntry>((previous?.entries ?? []).map((e) => [e.line, e]));
  const report: EvalReport = {
    format: 'stepvideo-eval-report',
    version: 1,
    promptsFile,
    categoriesFile: categoriesFile ?? null,
    config,
    configKey,
    updatedAt: '',
    entries: [],
    categories: [],
    totals: { prompts: 0, done: 0, failed: 0, skippedThisRun: 0, seconds: 0 },
  };
  let skipped = 0;
  const save = async () => {
    report.entries = [...entries.values()].sort((a, b) => a.line - b.line);
    summarize(report, all, skipped);
    await writeReport(outDir, report);
  };

  const extension = options.format === 'png' ? '' : `.${options.format}`;
  for (let index = 0; index < prompts.length; index++) {
    throwIfAborted(signal, 'evaluation');
    const item = prompts[index]!;
    const id = promptId(item.line);
    const video = `videos/${id}${extension}`;
    const earlier = entries.get(item.line);
    if (earlier?.status === 'done' && earlier.configKey === configKey && earlier.prompt === item.prompt && existsSync(path.join(outDir, video))) {
      skipped++;
      options.onPrompt?.({ prompt: item, index, total: prompts.length, action: 'skip' });
      continue;
    }
    options.onPrompt?.({ prompt: item, index, total: prompts.length, action: 'run' });
    const seed = options.baseSeed + item.line;
    const started = performance.now();
    const entry: EvalEntry = { line: item.line, id, prompt: item.prompt, category: item.category, status: 'done', seed: String(seed), seconds: 0, configKey, finishedAt: '' };
    try {
      let preview: Buffer | undefined;
      const generated = await pipeline.generate({
        ...options.job,
        prompt: item.prompt,
        seed,
        ...(signal ? { signal } : {}),
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
        ...(options.onWarning ? { onWarning: options.onWarning } : {}),
        // Only the last step's preview is kept: asked for once (previewEvery past the last step).
        ...(options.preview !== false ? { previewEvery: Number.MAX_SAFE_INTEGER, onPreview: (p: PreviewEvent) => void (preview = p.png) } : {}),
      });
      const thumbnails = new Thumbnails(generated.info.frames);
      await generated.save(path.join(outDir, video), { format: options.format, ...(signal ? { signal } : {}), onChunk: (chunk) => thumbnails.take(chunk) });
      entry.video = video;
      entry.thumbnails = await thumbnails.write(path.join(outDir, 'thumbnails'), id);
      if (preview !== undefined) {
        await writeFileAtomic(path.join(outDir, 'thumbnails', `${id}-preview.png`), preview);
        entry.preview = `thumbnails/${id}-preview.png`;
      }
    } catch (error) {
      if (isStepVideoError(error, 'ERR_ABORTED') || signal?.aborted) {
        await save();
        throw error;
      }
      entry.status = 'failed';
      entry.error = error instanceof Error ? error.message : String(error);
    }
    entry.seconds = Number(((performance.now() - started) / 1000).toFixed(2));
    entry.finishedAt = new Date().toISOString();
    entries.set(item.line, entry);
    await save();
    options.onResult?.(entry);
  }
  await save();
  return report;
}

/** Keeps the first and the middle frame of a video as it streams past, then writes them as PNG. */
class Thumbnails {
  readonly #wanted: Array<{ name: string; frame: number }>;
  readonly #kept = new Map<string, Buffer>();

  constructor(frames: number) {
    this.#wanted = [
      { name: 'first', frame: 0 },
      { name: 'middle', frame: Math.floor(frames / 2) },
    ];
  }

  take(chunk: VideoChunk): void {
    const { frames } = chunk;
    const size = frames.width * frames.height * 3;
    for (const { name, frame } of this.#wanted) {
      const local = frame - chunk.firstFrame;
      if (local >= 0 && local < frames.count) this.#kept.set(name, encodePng(frames.data.subarray(local * size, (local + 1) * size), frames.width, frames.height));
    }
  }

  async write(dir: string, id: string): Promise<string[]> {
    const written: string[] = [];
    for (const { name } of this.#wanted) {
      const png = this.#kept.get(name);
      if (png === undefined) continue;
      await writeFileAtomic(path.join(dir, `${id}-${name}.png`), png);
      written.push(`thumbnails/${id}-${name}.png`);
    }
    return written;
  }
}
