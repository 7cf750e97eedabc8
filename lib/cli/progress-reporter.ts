// Progress on the terminal for the pipeline commands. On a TTY one line is redrawn in place (a bar,
// the step, the ETA); elsewhere (pipes, CI logs) plain lines are printed: one per finished load,
// denoising step, decoded chunk and written file, never a carriage return.
import { formatBytes } from '../pipeline/memory.js';
import { type PipelineProgress, formatDuration, progressBar } from '../pipeline/progress.js';

/** The text of one progress update, and whether it ends its stage (a plain-mode line is printed only then). */
export function describeProgress(p: PipelineProgress): { text: string; final: boolean } {
  switch (p.stage) {
    case 'prepare':
      return { text: p.done ? `made the built-in test model in ${p.dir}` : `making the built-in test model in ${p.dir} (once)`, final: p.done };
    case 'load': {
      if (p.loadedBytes >= p.totalBytes) return { text: `loaded ${p.part} (${formatBytes(p.totalBytes)})`, final: true };
      return { text: `loading ${p.part} ${progressBar(p.fraction)} ${formatBytes(p.loadedBytes)} / ${formatBytes(p.totalBytes)}`, final: false };
    }
    case 'text':
      return { text: p.done ? `encoded the prompt (${formatDuration(p.elapsedMs)})` : 'encoding the prompt', final: p.done };
    case 'denoise': {
      // A finished step prints its count; a block update, the running step's 1-based position.
      const position = p.block === undefined ? `step ${p.step}/${p.total}` : `step ${p.step + 1}/${p.total} block ${p.block}/${p.blocks}`;
      const perStep = p.block === undefined ? p.elapsedMs / p.step : Number.NaN;
      const rate = Number.isFinite(perStep) ? `, ${formatDuration(perStep)}/step` : '';
      return { text: `denoising ${progressBar(p.fraction)} ${position}${rate}, ETA ${formatDuration(p.etaMs)}`, final: p.block === undefined };
    }
    case 'decode':
      return { text: `decoding ${progressBar(p.fraction)} chunk ${p.chunk}/${p.total}, ETA ${formatDuration(p.etaMs)}`, final: true };
    case 'write':
      return p.done ? { text: `wrote ${p.path}`, final: true } : { text: `writing ${progressBar(p.fraction)} ${p.frames}/${p.totalFrames} frames`, final: false };
  }
}

export interface ProgressSink {
  /** Raw text (no newline added): used on a TTY to redraw. */
  write: (text: string) => void;
  /** A whole line. */
  line: (text: string) => void;
}

export class ProgressReporter {
  readonly #interactive: boolean;
  readonly #sink: ProgressSink;
  #open = false;
  #lastStage: string | undefined;

  constructor(interactive: boolean, sink: ProgressSink) {
    this.#interactive = interactive;
    this.#sink = sink;
  }

  update(progress: PipelineProgress): void {
    const { text, final } = describeProgress(progress);
    if (this.#interactive) {
      // A new stage keeps the finished line of the previous one on screen.
      if (this.#open && this.#lastStage !== progress.stage) this.#sink.write('\n');
      this.#sink.write(`\r\x1b[2K${text}`);
      this.#open = true;
      if (final && (progress.stage === 'write' || progress.stage === 'text' || progress.stage === 'load' || progress.stage === 'prepare')) this.#endLine();
    } else if (final) {
      this.#sink.line(text);
    }
    this.#lastStage = progress.stage;
    if (progress.stage === 'denoise' && progress.estimates !== undefined && progress.evaluated !== undefined) this.message(describeCacheDecision(progress.step, progress.total, progress.evaluated, progress.estimates));
  }

  /** A message between progress lines (warnings, notices). */
  message(text: string): void {
    this.#endLine();
    this.#sink.line(text);
  }

  /** Ends a redrawn line, if one is open. */
  finish(): void {
    this.#endLine();
  }

  #endLine(): void {
    if (this.#open) this.#sink.write('\n');
    this.#open = false;
    this.#lastStage = undefined;
  }
}

/** "step 7/50 cache: cond computed (0.061 over the threshold), uncond estimated (0.032)". */
export function describeCacheDecision(step: number, total: number, evaluated: readonly boolean[], estimates: readonly number[]): string {
  const names = evaluated.length === 2 ? ['cond', 'uncond'] : ['model'];
  const parts = evaluated.map((ran, b) => {
    const estimate = estimates[b]!;
    const why = Number.isFinite(estimate) ? ` (${estimate.toFixed(3)})` : ' (always)';
    return `${names[b]} ${ran ? 'computed' : 'estimated'}${why}`;
  });
  return `step ${step}/${total} cache: ${parts.join(', ')}`;
}

