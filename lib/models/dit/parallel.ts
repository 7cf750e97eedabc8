// Several ranks for one video: a StepVideoDiT behind the sampler's VelocityModel interface, with
// sequence parallelism (the tokens of a forward split over `sequenceParallel` ranks, Ulysses
// all-to-all around each self-attention: StepVideoDiT.forwardSequenceParallel) and CFG parallelism
// (the conditional and unconditional rows on two groups of ranks at once), combinable: 2 x N ranks.
// One process drives every rank (lib/parallel/communicator.ts says why); the result equals the
// single-device forward.
import type { Device } from '../../device.js';
import { StepVideoError } from '../../errors.js';
import * as ops from '../../ops.js';
import { type Communicator, communicatorFor } from '../../parallel/communicator.js';
import type { Tensor } from '../../tensor.js';
import type { DiTConditioning, DiTContext, DiTForwardOptions, StepVideoDiT } from './model.js';

export interface DiTParallelism {
  /** Ranks a forward's tokens are split over (a divisor of the 48 heads; 1 = none). */
  sequenceParallel?: number;
  /** The conditional and unconditional rows of classifier-free guidance on two groups of ranks. */
  cfgParallel?: boolean;
}

/**
 * The text side for a parallel forward: per CFG group, one DiT context per rank (the same object
 * for ranks that share a model). A replica on another device gets its context at the first forward
 * (the conditioning has to be copied there, which is asynchronous).
 */
export class ParallelDiTContext implements Disposable {
  /** @internal per group, per rank */ readonly groups: Array<Array<DiTContext | undefined>>;
  /** @internal the group's conditioning, kept until every rank has its context */ readonly pending: Array<DiTConditioning | undefined>;

  /** @internal */
  constructor(groups: Array<Array<DiTContext | undefined>>, pending: Array<DiTConditioning | undefined>) {
    this.groups = groups;
    this.pending = pending;
  }

  dispose(): void {
    for (const c of new Set(this.groups.flat())) c?.dispose();
    for (const p of this.pending) {
      p?.y.dispose();
      p?.clip.dispose();
    }
    this.pending.fill(undefined);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export class ParallelDiT {
  readonly model: StepVideoDiT;
  readonly sequenceParallel: number;
  readonly cfgParallel: boolean;
  /** The model of each rank, group-major (group g, rank r at g · sequenceParallel + r). */
  readonly rankModels: readonly StepVideoDiT[];
  readonly #communicators: Communicator[];

  /**
   * `replicas`: one model per rank, group-major, each a replica of `model` (loaded from the same
   * folder with the same options) on the rank's device; the first is `model` itself. Without them
   * every rank uses `model` on its device: the CPU simulation of several devices, or ranks sharing
   * one GPU. A group whose ranks each have a GPU of their own exchanges through NCCL; other groups,
   * or a host without NCCL (`onWarning` says so), through copies.
   */
  constructor(model: StepVideoDiT, parallelism: DiTParallelism = {}, replicas?: readonly StepVideoDiT[], onWarning?: (message: string) => void) {
    const degree = parallelism.sequenceParallel ?? 1;
    const heads = model.config.numAttentionHeads;
    if (!Number.isInteger(degree) || degree < 1 || heads % degree !== 0) {
      throw new StepVideoError('ERR_ARGUMENT', `sequence parallelism needs a degree dividing the ${heads} attention heads`, { got: degree });
    }
    const groups = parallelism.cfgParallel ? 2 : 1;
    const ranks = degree * groups;
    if (replicas !== undefined && (replicas.length !== ranks || replicas[0] !== model)) {
      throw new StepVideoError('ERR_ARGUMENT', `${ranks} ranks need ${ranks} models, the first being the model itself`, { got: replicas.length });
    }
    this.model = model;
    this.sequenceParallel = degree;
    this.cfgParallel = groups === 2;
    this.rankModels = replicas ? [...replicas] : Array.from({ length: ranks }, () => model);
    this.#communicators = Array.from({ length: groups }, (_, g) => communicatorFor(this.#groupModels(g).map((m) => m.device), onWarning));
  }

  get device(): Device {
    return this.model.device;
  }

  get dtype(): 'f32' | 'bf16' {
    return this.model.dtype;
  }

  /** Ranks in all: sequenceParallel, twice that with CFG parallelism. */
  get ranks(): number {
    return this.rankModels.length;
  }

  #groupModels(g: number): StepVideoDiT[] {
    return this.rankModels.slice(g * this.sequenceParallel, (g + 1) * this.sequenceParallel);
  }

  /** The step cache's probe: the lead model's (the probe reads no rank-specific state). */
  cacheProbe(latents: Tensor, timestep: number): Promise<Float32Array> {
    return this.model.cacheProbe(latents, timestep);
  }

  prepareContext(cond: DiTConditioning): ParallelDiTContext {
    const groups = this.#communicators.length;
    const rows = cond.y.size(0);
    if (groups === 2) requireGuidedRows(rows);
    const half = rows / groups;
    const columns = cond.mask.length / rows;
    const contexts: Array<Array<DiTContext | undefined>> = [];
    const pending: Array<DiTConditioning | undefined> = [];
    const made = new ParallelDiTContext(contexts, pending);
    try {
      for (let g = 0; g < groups; g++) {
        using y = groups === 1 ? cond.y.narrow(0, rows) : cond.y.narrow(g * half, half);
        using clip = groups === 1 ? cond.clip.narrow(0, rows) : cond.clip.narrow(g * half, half);
        const mask = Array.prototype.slice.call(cond.mask, g * half * columns, (g + 1) * half * columns) as number[];
        const own = new Map<StepVideoDiT, DiTContext>();
        const row: Array<DiTContext | undefined> = [];
        contexts.push(row);
        for (const replica of this.#groupModels(g)) {
          // Ranks sharing a model share its context; a replica on this device makes its own now, one elsewhere at the first forward.
          if (!own.has(replica) && replica.device === this.model.device) own.set(replica, replica.prepareContext({ y, clip, mask }));
          row.push(own.get(replica));
        }
        pending.push(row.every((c) => c !== undefined) ? undefined : { y: y.clone(), clip: clip.clone(), mask });
      }
    } catch (error) {
      made.dispose();
      throw error;
    }
    return made;
  }

  /** Gives every rank on another device its context (copying the group's conditioning there once per device). */
  async #ready(context: ParallelDiTContext): Promise<void> {
    for (let g = 0; g < context.groups.length; g++) {
      const cond = context.pending[g];
      if (cond === undefined) continue;
      const row = context.groups[g]!;
      const models = this.#groupModels(g);
      for (let r = 0; r < row.length; r++) {
        if (row[r] !== undefined) continue;
        const replica = models[r]!;
        using y = await cond.y.to(replica.device);
        using clip = await cond.clip.to(replica.device);
        const made = replica.prepareContext({ y, clip, mask: cond.mask });
        for (let k = r; k < row.length; k++) if (models[k] === replica) row[k] = made;
      }
      cond.y.dispose();
      cond.clip.dispose();
      context.pending[g] = undefined;
    }
  }

  /**
   * The velocity of latents [rows, F, C, H, W]: with CFG parallelism the first half of the rows
   * (conditional) runs on group 0 and the second (unconditional) on group 1, at once. If a group
   * fails or the signal fires, the other is stopped too and both have freed their memory before
   * the error is thrown. onBlock reports the blocks both groups have finished.
   */
  async forward(latents: Tensor, timestep: readonly number[], context: ParallelDiTContext, options: DiTForwardOptions = {}): Promise<Tensor> {
    const groups = context.groups;
    if (groups.length !== this.#communicators.length || groups.some((row) => row.length !== this.sequenceParallel)) {
      throw new StepVideoError('ERR_ARGUMENT', 'the context was prepared for another parallel layout', { expected: this.ranks, got: groups.flat().length });
    }
    await this.#ready(context);
    const run = async (g: number, input: Tensor, steps: readonly number[], forwardOptions: DiTForwardOptions): Promise<Tensor> => {
      const contexts = groups[g]! as DiTContext[];
      const lead = contexts[0]!.owner;
      if (this.sequenceParallel === 1 && lead === this.model) return this.model.forward(input, steps, contexts[0]!, forwardOptions);
      // A group led by a replica on another device gets its rows there, and gives the velocity back.
      using there = lead.device === input.device ? input.narrow(0, input.size(0)) : await input.to(lead.device);
      const velocity = this.sequenceParallel === 1
        ? await lead.forward(there, steps, contexts[0]!, forwardOptions)
        : await lead.forwardSequenceParallel(there, steps, contexts, this.#communicators[g]!, forwardOptions);
      if (velocity.device === this.model.device) return velocity;
      using remote = velocity;
      return remote.to(this.model.device);
    };
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
      const first = results.map((r) => (r.status === 'rejected' ? r.reason : undefined)).find((e) => e !== undefined && !(e instanceof StepVideoError && e.code === 'ERR_ABORTED'));
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
