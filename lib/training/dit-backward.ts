// The LoRA gradients of a DiT forward, with gradient checkpointing per block: a forward keeps
// each block's input (the checkpoints), then the backward walks the blocks in reverse, recomputing
// one block at a time on a Tape (lib/training/tape.ts) and differentiating it, so only one block's
// activations live at once. The recomputed block is the inference block op for op (model.ts's
// #openBlock / #selfAttention / #closeBlock, unfused path), so on the CPU its output equals the
// forward's bit for bit (test/cpu/dpo-backward.test.ts checks it). Only the LoRA adapters train:
// the base weights, norms and modulation are constants, so their gradients are never formed.
import { getDevice } from '../device.js';
import { StepVideoError, throwIfAborted } from '../errors.js';
import { Rope3D } from '../kernels/rope.js';
import type { BlockWeights } from '../models/dit/block-weights.js';
import { type DiTContext, type DiTTrainingInternals, type StepVideoDiT, rowView } from '../models/dit/model.js';
import { LORA_LINEARS, type LoraLinear } from '../models/dit/lora.js';
import * as ops from '../ops.js';
import { formatShape } from '../shape.js';
import { Tensor, TensorScope } from '../tensor.js';
import { Tape } from './tape.js';

/** f32 gradients of the adapter's A [r, in] and B [out, r], by "<block>.<linear>". */
export type LoraGradients = Map<string, { a: Tensor; b: Tensor }>;

export function disposeGradients(grads: LoraGradients): void {
  for (const g of grads.values()) [g.a, g.b].forEach((t) => t.dispose());
  grads.clear();
}

/** A forward's output and the input [B, N, D] of every block, then the final layer's input (numLayers + 1 tensors). */
export interface Checkpointed {
  output: Tensor;
  inputs: Tensor[];
}

export interface CheckpointOptions {
  signal?: AbortSignal;
  /**
   * Keep the checkpoints in host memory instead of on the model's device: each block input is
   * copied out as the forward shows it (the device copy freed once the transfer is done), and the
   * backward brings them back one block ahead of use. Device memory then holds about one block
   * input instead of numLayers + 1 (lib/training/memory.ts's offloadCheckpoints).
   */
  offload?: boolean;
}

/** model.forward, keeping each block's input (copies made as the forward shows them). */
export async function forwardWithCheckpoints(model: StepVideoDiT, latents: Tensor, timestep: readonly number[], context: DiTContext, options: CheckpointOptions = {}): Promise<Checkpointed> {
  const cfg = model.config;
  const inputs: Array<Tensor | undefined> = new Array(cfg.numLayers + 1);
  const transfers: Array<Promise<void>> = [];
  const host = getDevice('cpu');
  const [B] = latents.shape as [number];
  const keep = (index: number, t: Tensor) => {
    const copy = t.clone();
    if (!options.offload || model.device === host) {
      inputs[index] = copy;
      return;
    }
    transfers.push(
      copy.to(host).then(
        (onHost) => {
          inputs[index] = onHost;
        },
      ).finally(() => copy.dispose()),
    );
  };
  let output: Tensor | undefined;
  try {
    output = await model.forward(latents, timestep, context, {
      ...(options.signal ? { signal: options.signal } : {}),
      capture: (name, t) => {
        if (name === 'pos_embed') {
          using tokens = t.reshape(B, -1, cfg.innerDim);
          keep(0, tokens);
        } else {
          const block = /^transformer_blocks\.(\d+)$/.exec(name);
          if (block) keep(Number(block[1]) + 1, t);
        }
      },
    });
    await Promise.all(transfers);
    if (inputs.some((t) => t === undefined)) throw new StepVideoError('ERR_INTERNAL', 'the forward did not show every block input');
    return { output, inputs: inputs as Tensor[] };
  } catch (error) {
    output?.dispose();
    await Promise.allSettled(transfers);
    for (const t of inputs) t?.dispose();
    throw error;
  }
}

export interface DiTBackwardOptions {
  signal?: AbortSignal;
  /** Called as blocks' backward passes finish, with the count done (1..numLayers). */
  onBlock?: (done: number, total: number) => void;
}

/**
 * The gradients of ⟨dOutput, forward(latents, timestep, context)⟩ with respect to the LoRA adapter
 * the context carries (context.lora), from the forward's checkpoints (consumed: disposed here).
 * dOutput [B, F, C, H, W] in the model dtype.
 */
export async function ditLoraGradients(model: StepVideoDiT, latents: Tensor, timestep: readonly number[], context: DiTContext, checkpoints: Tensor[], dOutput: Tensor, options: DiTBackwardOptions = {}): Promise<LoraGradients> {
  const cfg = model.config;
  const lora = context.lora;
  const grads: LoraGradients = new Map();
  const scope = new TensorScope();
  for (const t of checkpoints) scope.track(t);
  let next: Promise<Tensor> | undefined;
  try {
    if (lora === undefined) throw new StepVideoError('ERR_ARGUMENT', 'the LoRA gradients need a context prepared with the adapter (prepareContext({ lora }))');
    if (checkpoints.length !== cfg.numLayers + 1) throw new StepVideoError('ERR_ARGUMENT', `the backward needs ${cfg.numLayers + 1} checkpoints`, { got: checkpoints.length });
    if (dOutput.dtype !== model.dtype || dOutput.shape.some((d, i) => d !== latents.shape[i]) || dOutput.ndim !== 5) {
      throw new StepVideoError('ERR_SHAPE', "d(output) must match the forward's output", { tensor: 'dOutput', expected: `${model.dtype} ${formatShape(latents.shape)}`, got: `${dOutput.dtype} ${formatShape(dOutput.shape)}` });
    }
    const m = model.trainingInternals();
    const [B, F, , H, W] = latents.shape as [number, number, number, number, number];
    const p = cfg.patchSize;
    const [Hp, Wp, D] = [H / p, W / p, cfg.innerDim];
    const N = F * Hp * Wp;
    const { embedded, byRow } = m.modulation(timestep, B, scope);
    using ropeTables = Rope3D.create([F, Hp, Wp], { split: cfg.ropeSplit, theta: cfg.ropeTheta, angles: model.numerics === 'bf16-official' ? 'bf16-official' : 'exact', device: model.device });
    // The keys and values' input, as prepareContext joined and cut it (used where attn2.wkv has an adapter).
    const joined = scope.track(ops.concat([context.clipProjection, context.captionProjection], 1));
    const keys = context.crossKeys[0]!.size(2);
    const contextTokens = keys < joined.size(1) ? scope.track(ops.slice(joined, 1, 0, keys)) : joined;

    // Checkpoints held on the host come back one block ahead of their use (the copies tracked by the scope).
    const fetch = (i: number): Promise<Tensor> => (checkpoints[i]!.device === model.device ? Promise.resolve(checkpoints[i]!) : checkpoints[i]!.to(model.device).then((t) => scope.track(t)));
    next = fetch(cfg.numLayers);

    // Final layer: LN(x)·(1 + table[1] + e) + table[0] + e, then proj_out; the gradient of its input.
    let dx: Tensor;
    {
      using tape = new Tape();
      const input = await next;
      next = fetch(cfg.numLayers - 1);
      const xL = tape.watch(input);
      using table = m.weight('scale_shift_table').reshape(2, 1, D);
      using eRow = embedded.reshape(1, B, D);
      const shiftScale = tape.keep(ops.add(table, eRow));
      const [shift, scale] = [0, 1].map((row) => tape.keep(rowView(shiftScale, row, B, D)));
      const normed = tape.layerNorm(xL, { scale: scale!, shift: shift!, eps: cfg.normEps });
      const projected = tape.linear(normed, m.weight('proj_out.weight'), (t) => ops.linear(t, m.weight('proj_out.weight'), m.weight('proj_out.bias')));
      using seed = patchGradient(dOutput, p);
      tape.backward(projected, seed);
      dx = takeGradient(tape, xL, 'the final layer');
      checkpoints[cfg.numLayers]!.dispose();
      input.dispose();
    }

    for (let i = cfg.numLayers - 1; i >= 0; i--) {
      throwIfAborted(options.signal, 'DiT backward');
      const input = await next;
      if (i > 0) next = fetch(i - 1);
      const blockGrad = m.withBlock(i, (w) => {
        using tape = new Tape();
        using dOut = dx;
        const x = tape.watch(input);
        const entries = LORA_LINEARS.map((linear) => [linear, lora.get(i, linear)] as const).filter(([, e]) => e !== undefined);
        for (const [, e] of entries) [e!.a, e!.b].forEach((t) => tape.watch(t));
        const out = blockOnTape(tape, m, model, i, w, x, byRow, ropeTables, context, contextTokens, [B, N, D]);
        tape.backward(out, dOut);
        for (const [linear, e] of entries) {
          using ga = tape.take(e!.a);
          using gb = tape.take(e!.b);
          grads.set(`${i}.${linear}`, { a: asF32(ga, e!.a), b: asF32(gb, e!.b) });
        }
        return takeGradient(tape, x, `block ${i}`);
      });
      dx = blockGrad;
      checkpoints[i]!.dispose();
      input.dispose();
      await model.device.synchronize();
      options.onBlock?.(cfg.numLayers - i, cfg.numLayers);
    }
    dx.dispose();
    return grads;
  } catch (error) {
    disposeGradients(grads);
    throw error;
  } finally {
    // A prefetch still in flight lands in the scope before it is emptied.
    await next?.catch(() => undefined);
    scope.dispose();
  }
}

/** d(tokens [B, N, p·p·C]) from d(output [B, F, C, H, W]): the transpose of model.ts's unpatchify (a permutation). */
function patchGradient(dOutput: Tensor, p: number): Tensor {
  const [B, F, C, H, W] = dOutput.shape as [number, number, number, number, number];
  using grid = dOutput.reshape(B * F, C, H / p, p, W / p, p);
  // unpatchify reads grid [BF, Hp, Wp, p, p, C] through permute [0, 5, 1, 3, 2, 4]; its inverse is [0, 2, 4, 3, 5, 1].
  using tokens = ops.permute(grid, [0, 2, 4, 3, 5, 1]);
  return tokens.reshape(B, F * (H / p) * (W / p), p * p * C);
}

function takeGradient(tape: Tape, t: Tensor, where: string): Tensor {
  const g = tape.take(t);
  if (g === undefined) throw new StepVideoError('ERR_INTERNAL', `no gradient reached the input of ${where}`);
  return g;
}

/** A parameter's gradient in f32 (zeros when none reached it: an adapter whose path was cut). */
function asF32(g: Tensor | undefined, like: Tensor): Tensor {
  if (g === undefined) return Tensor.zeros(like.shape, 'f32', like.device);
  return ops.cast(g, 'f32');
}

/**
 * One block on the tape, op for op as the inference block (model.ts) runs it with model-dtype or
 * FP8 weights and the residual unfused; returns the block's output (owned by the tape).
 */
function blockOnTape(
  tape: Tape, m: DiTTrainingInternals, model: StepVideoDiT, i: number, w: BlockWeights, x: Tensor, byRow: Tensor,
  rope: Rope3D, context: DiTContext, contextTokens: Tensor, [B, N, D]: [number, number, number],
): Tensor {
  const cfg = model.config;
  const heads = cfg.numAttentionHeads;
  const lora = context.lora;
  const linear = (t: Tensor, name: string) => tape.linear(t, w.linear(`${name}.weight`), (input) => m.linear(input, w.linear(`${name}.weight`)));
  /** y + the adapter's delta of x when the Linear has one (lora.ts's withLora). */
  const withLora = (y: Tensor, t: Tensor, name: LoraLinear) => {
    const entry = lora?.get(i, name);
    return entry ? tape.add(y, tape.loraDelta(t, entry)) : y;
  };
  /** out + gate ⊙ the adapter's delta of t (model.ts's withGatedDelta). */
  const withGatedDelta = (out: Tensor, t: Tensor, name: LoraLinear, gate: Tensor | undefined) => {
    const entry = lora?.get(i, name);
    return entry ? tape.gatedAdd(out, tape.loraDelta(t, entry), gate) : out;
  };

  using table = w.tensor('scale_shift_table').reshape(6, 1, D);
  const rows = tape.keep(ops.add(byRow, table));
  const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = [0, 1, 2, 3, 4, 5].map((r) => tape.keep(rowView(rows, r, B, D)));

  // Self-attention on LN1(x)·(1 + scale) + shift, QK-Norm and 3D RoPE, gated residual.
  const a = tape.layerNorm(x, { weight: w.tensor('norm1.weight'), bias: w.tensor('norm1.bias'), scale: scaleMsa!, shift: shiftMsa!, eps: cfg.blockNormEps });
  const qkv = withLora(linear(a, 'attn1.wqkv'), a, 'attn1.wqkv');
  const self = tape.splitHeads(qkv, { heads, layout: ['q', 'k', 'v'], qNorm: w.tensor('attn1.q_norm.weight'), kNorm: w.tensor('attn1.k_norm.weight'), eps: cfg.qkNormEps, rope });
  const mixed = tape.reshape(tape.attention(self.q!, self.k!, self.v!), [B, N, D]);
  const x1 = withGatedDelta(tape.gatedResidual(x, linear(mixed, 'attn1.wo'), gateMsa), mixed, 'attn1.wo', gateMsa);

  // Cross-attention on the raw stream; the keys and values recomputed only where attn2.wkv has an adapter.
  const qProj = withLora(linear(x1, 'attn2.wq'), x1, 'attn2.wq');
  const q2 = tape.splitHeads(qProj, { heads, layout: ['q'], qNorm: w.tensor('attn2.q_norm.weight'), eps: cfg.qkNormEps }).q!;
  let [k2, v2] = [context.crossKeys[i]!, context.crossValues[i]!];
  if (lora?.get(i, 'attn2.wkv')) {
    const kv = withLora(linear(contextTokens, 'attn2.wkv'), contextTokens, 'attn2.wkv');
    const split = tape.splitHeads(kv, { heads, layout: ['k', 'v'], kNorm: w.tensor('attn2.k_norm.weight'), eps: cfg.qkNormEps });
    [k2, v2] = [split.k!, split.v!];
  }
  const cross = tape.reshape(tape.attention(q2, k2, v2, { kvLen: context.kvLen }), [B, N, D]);
  const x2 = withGatedDelta(tape.gatedResidual(x1, linear(cross, 'attn2.wo')), cross, 'attn2.wo', undefined);

  // FFN on LN2(x)·(1 + scale) + shift, GELU-tanh after the (adapted) first Linear, gated residual.
  const b = tape.layerNorm(x2, { weight: w.tensor('norm2.weight'), bias: w.tensor('norm2.bias'), scale: scaleMlp!, shift: shiftMlp!, eps: cfg.blockNormEps });
  const hidden = tape.geluTanh(withLora(linear(b, 'ff.net.0.proj'), b, 'ff.net.0.proj'));
  return withGatedDelta(tape.gatedResidual(x2, linear(hidden, 'ff.net.2'), gateMlp), hidden, 'ff.net.2', gateMlp);
}
