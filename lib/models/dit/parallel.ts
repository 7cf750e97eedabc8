// Several ranks for one video: a StepVideoDiT behind the sampler's VelocityModel interface, with
// sequence parallelism (the tokens of a forward split over `sequenceParallel` ranks, Ulysses
// all-to-all around each self-attention: StepVideoDiT.forwardSequenceParallel) and CFG parallelism
// (the conditional and unconditional rows on two groups of ranks at once), combinable: 2 x N ranks.
// One process drives every rank (lib/parallel/communicator.ts says why); the result equals the
// single-device forward.
import type { Device } from '../../device.js';
import { StepVideoError } from '../../errors.js';
import * as ops from '../../ops.js';
import { CopyCommunicator, type Communicator } from '../../parallel/communicator.js';
import type { Tensor } from '../../tensor.js';
import type { DiTConditioning, DiTContext, DiTForwardOptions, StepVideoDiT } from './model.js';

export interface DiTParallelism {
  /** Ranks a forward's tokens are split over (a divisor of the 48 heads; 1 = none). */
  sequenceParallel?: number;
  /** The conditional and unconditional rows of classifier-free guidance on two groups of ranks. */
  cfgParallel?: boolean;
}

/** The text side for a parallel forward: one DiT context per CFG group (the rows of that group). */
export class ParallelDiTContext implements Disposable {
  /** @internal */ readonly groups: DiTContext[];

  /** @internal */
  constructor(groups: DiTContext[]) {
    this.groups = groups;
  }

  dispose(): void {
    for (const g of this.groups) g.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export class ParallelDiT {
  readonly model: StepVideoDiT;
  readonly sequenceParallel: number;
  readonly cfgParallel: boolean;
  readonly #communicators: Communicator[];

  /**
   * The ranks run on the model's device in this version: the CPU simulation of several devices
   * (CI), or ranks sharing one GPU.
   */
  constructor(model: StepVideoDiT, parallelism: DiTParallelism = {}) {
    const degree = parallelism.sequenceParallel ?? 1;
    const heads = model.config.numAttentionHeads;
    if (!Number.isInteger(degree) || degree < 1 || heads % degree !== 0) {
      throw new StepVideoError('ERR_ARGUMENT', `sequence parallelism needs a degree dividing the ${heads} attention heads`, { got: degree });
    }
    this.model = model;
    this.sequenceParallel = degree;
    this.cfgParallel = parallelism.cfgParallel ?? false;
    this.#communicators = Array.from({ length: this.cfgParallel ? 2 : 1 }, () => CopyCommunicator.virtual(model.device, degree));
  }

  get device(): Device {
    return this.model.device;
  }

  get dtype(): 'f32' | 'bf16' {
    return this.model.dtype;
  }

  /** Ranks in all: sequenceParallel, twice that with CFG parallelism. */
  get ranks(): number {
    return this.sequenceParallel * this.#communicators.length;
  }

  prepareContext(cond: DiTConditioning): ParallelDiTContext {
    if (!this.cfgParallel) return new ParallelDiTContext([this.model.prepareContext(cond)]);
    const rows = cond.y.size(0);
    requireGuidedRows(rows);
    const half = rows / 2;
    const columns = cond.mask.length / rows;
    const groups: DiTContext[] = [];
    try {
      for (const g of [0, 1]) {
        using y = cond.y.narrow(g * half, half);
        using clip = cond.clip.narrow(g * half, half);
        const mask = Array.prototype.slice.call(cond.mask, g * half * columns, (g + 1) * half * columns) as number[];
        groups.push(this.model.prepareContext({ y, clip, mask }));
      }
    } catch (error) {
      for (const c of groups) c.dispose();
      throw error;
    }
    return new ParallelDiTContext(groups);
  }

  /**
   * The velocity of latents [rows, F, C, H, W]: with CFG parallelism the first half of the rows
   * (conditional) runs on group 0 and the second (unconditional) on group 1, at once. If a group
   * fails or the signal fires, the other is stopped too and both have freed their memory before
   * the error is thrown. onBlock reports the blocks both groups have finished.
   */
  async forward(latents: Tensor, timestep: readonly number[], context: ParallelDiTContext, options: DiTForwardOptions = {}): Promise<Tensor> {
    const groups = context.groups;
    if (groups.length !== this.#communicators.length) {
      throw new StepVideoError('ERR_ARGUMENT', 'the context was prepared for another parallel layout', { expected: this.#communicators.length, got: groups.length });
    }
    const run = (g: number, input: Tensor, steps: readonly number[], forwardOptions: DiTForwardOptions) =>
      this.sequenceParallel === 1
        ? this.model.forward(input, steps, groups[g]!, forwardOptions)
        : this.model.forwardSequenceParallel(input, steps, groups[g]!, this.#communicators[g]!, forwardOptions);
    if (groups.length === 1) return run(0, latents, timestep, options);

    const rows = latents.size(0);
    requireGuidedRows(rows);
    const half = rows / 2;
    const stop = new AbortController();
    const onAbort = () => stop.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) stop.abort(options.signal.reason);
    const done = [0, 0];
    let reported = 0;
    const results = await Promise.allSettled([0, 1].map(async (g) => {
      using input = latents.narrow(g * half, half);
      try {
        return await run(g, input, timestep.slice(g * half, (g + 1) * half), {
          signal: stop.signal,
          onBlock: (count, total) => {
            done[g] = count;
            const both = Math.min(done[0]!, done[1]!);
            if (both > reported) {
              reported = both;
              options.onBlock?.(both, total);
            }
          },
        });
      } catch (error) {
        stop.abort(error);  // the other group stops at its next block
        throw error;
      }
    }));
    options.signal?.removeEventListener('abort', onAbort);
    const outputs = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      for (const t of outputs) t.dispose();
      // The group that failed first is the cause; the other reports only that it was stopped.
      const first = results.map((r) => (r.status === 'rejected' ? r.reason : undefined)).find((e) => !(e instanceof StepVideoError && e.code === 'ERR_ABORTED'));
      throw first ?? failed.reason;
    }
    try {
      return ops.concat(outputs, 0);
    } finally {
      for (const t of outputs) t.dispose();
    }
  }
}

function requireGuidedRows(rows: number): void {
  if (rows % 2 !== 0) {
    throw new StepVideoError('ERR_ARGUMENT', 'CFG parallelism needs the conditional and unconditional rows (classifier-free guidance: a cfg scale above 1)', { got: `${rows} rows` });
  }
}
