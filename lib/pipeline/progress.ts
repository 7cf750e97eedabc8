// Progress of a pipeline job, stage by stage: making the built-in model (once), loading the weights, encoding the prompt, each
// denoising step (with the model's blocks in between, since a real step takes tens of seconds),
// each decoded VAE chunk, and writing the file. Timed stages carry an ETA from the mean time per
// unit so far.
//
// Every number in a progress update counts completed units, never an index: `step` steps done,
// `block` blocks done within the running step, `chunk` chunks delivered, `frames` frames written,
// `loadedBytes` bytes read. The DiT (onBlock) and the sampler (BlockProgress, SampleProgress) use
// the same convention; only text for people turns a count into a 1-based position ("step 3/50").
import type { LoadProgress } from '../io/load.js';

export type ModelPart = 'step-llm' | 'clip' | 'dit' | 'vae';

/** Making the built-in test model's folder (once per cache folder). */
export interface PrepareProgress {
  stage: 'prepare';
  dir: string;
  done: boolean;
  fraction: number;
}

/** A model part's weights being read (the bytes as the weight loader reports them). */
export interface ModelLoadProgress extends Pick<LoadProgress, 'loadedBytes' | 'totalBytes'> {
  stage: 'load';
  part: ModelPart;
  fraction: number;
}

export interface TextProgress {
  stage: 'text';
  /** false when encoding starts, true when the captions are ready. */
  done: boolean;
  elapsedMs: number;
  fraction: number;
}

export interface DenoiseProgress {
  stage: 'denoise';
  /** Steps done (0..total). An update with `block` set is within the running step, step + 1. */
  step: number;
  total: number;
  /** Blocks of the DiT done within the running step (1..blocks), on the per-block updates only. */
  block?: number;
  blocks?: number;
  elapsedMs: number;
  /** Estimated time to the end of the stage (NaN before the first unit is done). */
  etaMs: number;
  fraction: number;
  /**
   * On the per-step updates: per CFG branch ([conditional, unconditional], or one), whether the model
   * ran (false: the step cache estimated it), the cache's estimates, and the evaluations so far.
   */
  evaluated?: boolean[];
  estimates?: number[];
  evaluations?: number;
  maxEvaluations?: number;
}

export interface DecodeProgress {
  stage: 'decode';
  /** Chunks (17 frames each) delivered so far. */
  chunk: number;
  total: number;
  elapsedMs: number;
  etaMs: number;
  fraction: number;
}

export interface WriteProgress {
  stage: 'write';
  frames: number;
  totalFrames: number;
  path: string;
  /** True once the file is complete and in place. */
  done: boolean;
  fraction: number;
}

export type PipelineProgress = PrepareProgress | ModelLoadProgress | TextProgress | DenoiseProgress | DecodeProgress | WriteProgress;

/**
 * Elapsed time and ETA over `total` units of work: the ETA is the mean time per unit so far times
 * the units left (fractions of a unit count, e.g. blocks within a step).
 */
export class EtaTracker {
  readonly total: number;
  readonly #started: number;
  readonly #now: () => number;

  constructor(total: number, now: () => number = () => performance.now()) {
    this.total = total;
    this.#now = now;
    this.#started = now();
  }

  /** After `done` of `total` units (0 < done <= total): elapsed ms, ETA ms and the fraction done. */
  at(done: number): { elapsedMs: number; etaMs: number; fraction: number } {
    const elapsedMs = this.#now() - this.#started;
    const clamped = Math.min(Math.max(done, 0), this.total);
    const etaMs = clamped > 0 ? (elapsedMs / clamped) * (this.total - clamped) : Number.NaN;
    return { elapsedMs, etaMs, fraction: this.total > 0 ? clamped / this.total : 1 };
  }
}

/** "40 ms", "4.2 s", "12 s", "3 min 05 s", "1 h 02 min"; "?" for an unknown (NaN) duration. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(seconds % 60).padStart(2, '0')} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** A text bar of `width` cells for a fraction in [0, 1]: "[#####.....]". */
export function progressBar(fraction: number, width = 24): string {
  const f = Number.isFinite(fraction) ? Math.min(Math.max(fraction, 0), 1) : 0;
  const filled = Math.round(f * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}
