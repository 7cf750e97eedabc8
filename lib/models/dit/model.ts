// StepVideoModel, the Step-Video-T2V DiT (spec §2): loads the released transformer/ folder and
// runs the forward pass on the typed ops and kernel families. Model code only enqueues work; the
// forward awaits the device between blocks, so the event loop stays free, an AbortSignal is
// honoured within a block's time, and no more than about two blocks are queued at once. Block
// weights come from a BlockSource (block-weights.ts): resident in the model dtype or as FP8, or
// streamed from pinned host memory (streaming.ts); memory-model.ts counts what a forward allocates.
import type { Device, DeviceSpec } from '../../device.js';
import { getDevice } from '../../device.js';
import { StepVideoError, throwIfAborted } from '../../errors.js';
import { openWeights } from '../../io/index.js';
import { type LoadProgress, Weights, checkAgainstSpec } from '../../io/load.js';
import type { WeightIndex } from '../../io/tensor-record.js';
import { attention } from '../../kernels/attention.js';
import { Fp8Weight, linearFp8 } from '../../kernels/fp8.js';
import { linearResidual } from '../../kernels/linear.js';
import { layerNorm } from '../../kernels/norm.js';
import { gatedResidual } from '../../kernels/residual.js';
import { Rope3D } from '../../kernels/rope.js';
import { splitHeads } from '../../kernels/split-heads.js';
import * as ops from '../../ops.js';
import { formatShape } from '../../shape.js';
import { Tensor, TensorScope } from '../../tensor.js';
import { type ComputeDType, resolveComputeDType } from '../compute-dtype.js';
import { type DiTConfig, readDiTConfig } from './config.js';
import { type LoraAdapter, loraDelta, withLora } from './lora.js';
import { type DiTNumerics, crossAttentionLengths, timestepSinusoid } from './conditioning.js';
import { type BlockSource, type BlockWeights, type LinearWeight, isBlockTensor, loadResidentDiT, progressOver } from './block-weights.js';
import { StreamedBlocks } from './streaming.js';
import type { Communicator } from '../../parallel/communicator.js';
import { checkDiTCheckpoint, ditWeightSpec } from './weights.js';

export type DiTDType = ComputeDType;

/** How the block Linear weights are held: in the compute dtype, or as e4m3 with per-channel scales. */
export type DiTWeightFormat = 'model' | 'fp8';

export interface DiTLoadOptions {
  device?: DeviceSpec;
  /** Compute and weight dtype: f32 on the CPU backend (the reference), bf16 (default) or f32 on CUDA. */
  dtype?: DiTDType;
  /**
   * Where the official bf16 run rounds (RoPE angles and cos/sin, the timestep, the key-length sum):
   * 'bf16-official' reproduces it, 'exact' does not. Default: 'bf16-official' for bf16, 'exact' for f32.
   */
  numerics?: DiTNumerics;
  /**
   * 'fp8': the block Linears (wqkv, wo, wq, wkv, ff) are quantized at load to e4m3 with one f32
   * scale per output channel (29.7 GB of weights for the released model instead of 58.7 GB).
   * Default 'model' (the compute dtype).
   */
  weights?: DiTWeightFormat;
  /**
   * With FP8 weights: 'per-row' quantizes each Linear's input per token and runs the FP8
   * tensor-core GEMM (default on CUDA); 'none' multiplies the input by the dequantized weight
   * (default on the CPU: the accuracy of FP8 weights alone).
   */
  fp8Activations?: 'none' | 'per-row';
  /**
   * Opt-in (unvalidated on GPUs until the GPU suite has run it): the residual adds after wo and
   * ff.net.2 fused into the GEMM's epilogue (one op instead of two, the product never stored).
   */
  fusedResidual?: boolean;
  /**
   * Opt-in: the block weights stay in pinned host memory and are uploaded block by block into two
   * device slots while the previous block computes (for GPUs that cannot hold all of them).
   */
  streaming?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: LoadProgress) => void;
}

export interface DiTConditioning {
  /** encoder_hidden_states [B, Ly, captionChannels[0]]: the Step-LLM states. */
  y: Tensor;
  /** encoder_hidden_states_2 [B, Lc, captionChannels[1]]: the CLIP states (all Lc tokens). */
  clip: Tensor;
  /** encoder_attention_mask [B, Lc + Ly] on the host, 1 = keep: Lc ones, then the LLM mask. */
  mask: ArrayLike<number>;
  /** A LoRA adapter for this sampling run (lib/models/dit/lora.ts), on this model's device; borrowed, not disposed by the context. */
  lora?: LoraAdapter;
}

export interface DiTForwardOptions {
  signal?: AbortSignal;
  /** Called as blocks finish on the device, with the count done so far (1..total). */
  onBlock?: (done: number, total: number) => void;
  /**
   * Receives intermediates named as the golden `inter.*` keys. The tensor is valid during the call
   * only: start a read (toFloat32) or clone() it there.
   */
  capture?: (name: string, tensor: Tensor) => void;
}

/** The text side of a sampling run, computed once and shared by every step (see prepareContext). */
export class DiTContext implements Disposable {
  readonly batch: number;
  /** Key lengths per batch item (after the official rounding in bf16-official numerics). */
  readonly kvLengths: Int32Array;
  /** @internal */ readonly owner: StepVideoDiT;
  /** @internal kv lengths on the device (i32 [B]). */ readonly kvLen: Tensor;
  /** @internal caption_projection(caption_norm(y)) [B, Ly, D] and clip_projection(clip) [B, Lc, D]. */
  readonly captionProjection: Tensor;
  readonly clipProjection: Tensor;
  /** @internal each block's cross-attention keys and values [B, H, L, Dh] (L = max key length). */
  readonly crossKeys: Tensor[];
  readonly crossValues: Tensor[];
  /** The run's LoRA adapter, if any (borrowed). */
  readonly lora: LoraAdapter | undefined;

  /** @internal */
  constructor(init: Omit<DiTContext, 'dispose' | typeof Symbol.dispose | 'disposed'>) {
    this.batch = init.batch;
    this.kvLengths = init.kvLengths;
    this.owner = init.owner;
    this.kvLen = init.kvLen;
    this.captionProjection = init.captionProjection;
    this.clipProjection = init.clipProjection;
    this.crossKeys = init.crossKeys;
    this.crossValues = init.crossValues;
    this.lora = init.lora;
  }

  get disposed(): boolean {
    return this.kvLen.disposed;
  }

  dispose(): void {
    for (const t of [this.kvLen, this.captionProjection, this.clipProjection, ...this.crossKeys, ...this.crossValues]) t.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** How a loaded DiT computes; fixed at load. */
export interface DiTExecution {
  weights: DiTWeightFormat;
  fp8Activations: 'none' | 'per-row';
  fusedResidual: boolean;
  streaming: boolean;
}

export class StepVideoDiT implements Disposable {
  readonly config: DiTConfig;
  readonly device: Device;
  readonly dtype: DiTDType;
  readonly numerics: DiTNumerics;
  readonly execution: Readonly<DiTExecution>;
  /** The non-block tensors, and the block tensors too when the blocks are resident. */
  readonly #weights: Weights;
  readonly #blocks: BlockSource;
  /** pos_embed.proj.weight [D, C, p, p] viewed as the Linear weight [D, C·p·p]. */
  readonly #patchWeight: Tensor;

  private constructor(config: DiTConfig, device: Device, dtype: DiTDType, numerics: DiTNumerics, execution: DiTExecution, weights: Weights, blocks: BlockSource) {
    this.config = config;
    this.device = device;
    this.dtype = dtype;
    this.numerics = numerics;
    this.execution = Object.freeze({ ...execution });
    this.#weights = weights;
    this.#blocks = blocks;
    const patch = weights.get('pos_embed.proj.weight');
    this.#patchWeight = patch.reshape(patch.size(0), patch.numel / patch.size(0));
  }

  /** Loads `dir` = the released transformer/ folder (config.json + one safetensors file or shards + index). */
  static async load(dir: string, options: DiTLoadOptions = {}): Promise<StepVideoDiT> {
    throwIfAborted(options.signal, 'DiT loading');
    const config = await readDiTConfig(dir);
    const index = await openWeights(dir, { basename: 'diffusion_pytorch_model' });
    checkDiTCheckpoint(index, config, `${dir}/config.json`);
    return StepVideoDiT.fromIndex(config, index, options);
  }

  /**
   * Loads from an opened checkpoint index and its parsed config (load() does both from a folder;
   * benchmarks use this to build indexes over generated weights).
   */
  static async fromIndex(config: DiTConfig, index: WeightIndex, options: DiTLoadOptions = {}): Promise<StepVideoDiT> {
    const device = getDevice(options.device);
    const dtype = resolveComputeDType(device, options.dtype, 'bf16', 'DiT');
    const numerics = options.numerics ?? (dtype === 'bf16' ? 'bf16-official' : 'exact');
    if (numerics !== 'exact' && numerics !== 'bf16-official') {
      throw new StepVideoError('ERR_ARGUMENT', 'unknown DiT numerics', { expected: "'exact' or 'bf16-official'", got: numerics });
    }
    const execution = resolveExecution(options, device);
    throwIfAborted(options.signal, 'DiT loading');
    const fp8 = execution.weights === 'fp8';
    const common = { device, dtype, ...(options.signal ? { signal: options.signal } : {}) };
    if (!execution.streaming) {
      const { weights, blocks } = await loadResidentDiT(index, config, { ...common, fp8, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
      return new StepVideoDiT(config, device, dtype, numerics, execution, weights, blocks);
    }
    const spec = ditWeightSpec(config);
    checkAgainstSpec(index, spec);
    const names = [...spec.keys()];
    const progress = progressOver({ bytes: names.reduce((total, name) => total + index.get(name).byteLength, 0), tensors: names.length }, options.onProgress);
    const globals = new Map([...spec].filter(([name]) => !isBlockTensor(name)));
    const weights = await Weights.load(index, globals, { ...common, allowUnexpected: [/^transformer_blocks\.\d+\./], onProgress: progress.phase() });
    try {
      const blocks = await StreamedBlocks.load(index, config, { ...common, fp8, onProgress: progress.phase() });
      return new StepVideoDiT(config, device, dtype, numerics, execution, weights, blocks);
    } catch (error) {
      weights.dispose();
      throw error;
    }
  }

  /** Bytes held by the weights on the device (streamed: the global tensors and the two block slots). */
  get weightBytes(): number {
    let total = this.#blocks.deviceBytes;
    for (const name of this.#weights.names()) if (!isBlockTensor(name)) total += this.#weights.get(name).byteLength;
    return total;
  }

  /** Bytes of block weights held in pinned host memory (streaming only). */
  get hostWeightBytes(): number {
    return this.#blocks.hostBytes;
  }

  get disposed(): boolean {
    return this.#patchWeight.disposed;
  }

  dispose(): void {
    this.#patchWeight.dispose();
    this.#blocks.dispose();
    this.#weights.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /**
   * @internal What lib/training/dit-backward.ts recomputes blocks from: the weights (still owned
   * here), the Linear as inference runs it, and the AdaLN modulation.
   */
  trainingInternals(): DiTTrainingInternals {
    return {
      weight: (name) => this.#w(name),
      withBlock: (block, body) => this.#withBlock(block, body),
      linear: (x, weight) => this.#linear(x, weight),
      modulation: (timestep, B, scope) => this.#modulation(timestep, B, scope),
    };
  }

  #w(name: string): Tensor {
    if (this.disposed) throw new StepVideoError('ERR_DISPOSED', 'the DiT was used after dispose()');
    return this.#weights.get(name);
  }

  /** Runs `body` with block i's weights (streamed: acquired from its slot, released after). */
  #withBlock<T>(block: number, body: (weights: BlockWeights) => T): T {
    if (this.disposed) throw new StepVideoError('ERR_DISPOSED', 'the DiT was used after dispose()');
    const weights = this.#blocks.acquire(block);
    try {
      return body(weights);
    } finally {
      this.#blocks.release(block);
    }
  }

  /** x [..., in] · Wᵀ (no bias), whatever form the weight is held in. */
  #linear(x: Tensor, weight: LinearWeight, epilogue?: 'gelu_tanh'): Tensor {
    if (weight instanceof Fp8Weight) return linearFp8(x, weight, { activations: this.execution.fp8Activations, ...(epilogue ? { epilogue } : {}) });
    return ops.linear(x, weight, undefined, epilogue ? { epilogue } : {});
  }

  /**
   * residual + gate ⊙ (x·Wᵀ), disposing x as soon as the product no longer needs it: one op when
   * the residual is fused (model-dtype weights), otherwise the linear (shown to `show` as `name`)
   * and then the gated residual.
   */
  #linearResidual(x: Tensor, weight: LinearWeight, residual: Tensor, gate: Tensor | undefined, name: string, show: (name: string, t: Tensor) => void): Tensor {
    if (this.execution.fusedResidual && !(weight instanceof Fp8Weight)) {
      const out = linearResidual(x, weight, residual, gate);
      x.dispose();
      return out;
    }
    using y = this.#linear(x, weight);
    x.dispose();
    show(name, y);
    return gatedResidual(residual, y, gate);
  }

  /**
   * The timestep-independent text side: caption_projection(caption_norm(y)) and clip_projection(clip)
   * joined CLIP-first, truncated to the longest key length, projected to every block's
   * cross-attention keys (QK-Normed) and values; and the key lengths. Enqueued, not awaited.
   */
  prepareContext(cond: DiTConditioning): DiTContext {
    const { y, clip, mask, lora } = cond;
    if (lora !== undefined && lora.device !== this.device) throw new StepVideoError('ERR_DEVICE', 'the LoRA adapter is on another device', { tensor: 'lora', expected: this.device.name, got: lora.device.name });
    const { numAttentionHeads: heads, captionChannels } = this.config;
    for (const [name, t, channels] of [['encoder_hidden_states', y, captionChannels[0]], ['encoder_hidden_states_2', clip, captionChannels[1]]] as const) {
      if (t.ndim !== 3 || t.size(2) !== channels || t.size(0) !== y.size(0)) {
        throw new StepVideoError('ERR_SHAPE', 'DiT conditioning has the wrong shape', {
          tensor: name,
          expected: `[B, L, ${channels}] with B = ${y.shape[0]}`,
          got: formatShape(t.shape),
        });
      }
      if (t.device !== this.device) throw new StepVideoError('ERR_DEVICE', 'DiT conditioning is on another device', { tensor: name, expected: this.device.name, got: t.device.name });
    }
    const batch = y.size(0);
    const total = clip.size(1) + y.size(1);
    const kvLengths = crossAttentionLengths(mask, batch, total, this.numerics);
    // Keys past every item's length are never visible: drop them (the official truncation), but keep one so shapes stay non-empty.
    const keys = Math.max(1, ...kvLengths);

    const scope = new TensorScope();
    const kept: Tensor[] = [];
    const keep = <T extends Tensor>(t: T): T => {
      kept.push(t);
      return t;
    };
    try {
      const inModelDType = (t: Tensor) => (t.dtype === this.dtype ? t : scope.track(ops.cast(t, this.dtype)));
      const normed = scope.track(layerNorm(inModelDType(y), { eps: this.config.normEps }));
      const hidden = scope.track(
        ops.linear(normed, this.#w('caption_projection.linear_1.weight'), this.#w('caption_projection.linear_1.bias'), { epilogue: 'gelu_tanh' }),
      );
      const captionProjection = keep(ops.linear(hidden, this.#w('caption_projection.linear_2.weight'), this.#w('caption_projection.linear_2.bias')));
      const clipProjection = keep(ops.linear(inModelDType(clip), this.#w('clip_projection.weight'), this.#w('clip_projection.bias')));
      const joined = scope.track(ops.concat([clipProjection, captionProjection], 1));
      const context = keys < total ? scope.track(ops.slice(joined, 1, 0, keys)) : joined;
      const kvLen = keep(Tensor.from(kvLengths, [batch], { dtype: 'i32', device: this.device }));
      const crossKeys: Tensor[] = [];
      const crossValues: Tensor[] = [];
      for (let i = 0; i < this.config.numLayers; i++) {
        this.#withBlock(i, (w) => {
          using kv = withLora(this.#linear(context, w.linear('attn2.wkv.weight')), context, lora?.get(i, 'attn2.wkv'));
          const { k, v } = splitHeads(kv, { heads, layout: ['k', 'v'], kNorm: w.tensor('attn2.k_norm.weight'), eps: this.config.qkNormEps });
          crossKeys.push(keep(k!));
          crossValues.push(keep(v!));
        });
      }
      return new DiTContext({ batch, kvLengths, owner: this, kvLen, captionProjection, clipProjection, crossKeys, crossValues, lora });
    } catch (error) {
      for (const t of kept) t.dispose();
      throw error;
    } finally {
      scope.dispose();
    }
  }

  /**
   * latents [B, F, C, H, W] (model dtype) and B timesteps in [0, 1) → velocity [B, F, C, H, W].
   */
  async forward(latents: Tensor, timestep: readonly number[], context: DiTContext, options: DiTForwardOptions = {}): Promise<Tensor> {
    const { signal, onBlock, capture } = options;
    const cfg = this.config;
    const { B, F, H, W, p, Hp, Wp, D, N } = this.#checkForwardInputs(latents, timestep, context);
    throwIfAborted(signal, 'DiT forward');

    const scope = new TensorScope();
    const show = (name: string, t: Tensor, shape?: number[]) => {
      if (!capture) return;
      using view = t.reshape(shape ?? [...t.shape]);
      capture(name, view);
    };
    let rope: Rope3D | undefined;
    let x: Tensor | undefined;
    let inFlight: Promise<void> | undefined;
    try {
      // Patch embedding: a p×p stride-p conv is a Linear over each patch's (c, i, j) values.
      const patches = scope.track(patchify(latents, p));
      x = ops.linear(patches, this.#patchWeight, this.#w('pos_embed.proj.bias'));
      patches.dispose();
      show('pos_embed', x, [B * F, Hp * Wp, D]);

      const { embedded, modulation, byRow } = this.#modulation(timestep, B, scope);
      show('adaln_single', modulation);
      show('adaln_single.embedded_timestep', embedded);
      show('caption_projection', context.captionProjection);
      show('clip_projection', context.clipProjection);

      rope = Rope3D.create([F, Hp, Wp], {
        split: cfg.ropeSplit,
        theta: cfg.ropeTheta,
        angles: this.numerics === 'bf16-official' ? 'bf16-official' : 'exact',
        device: this.device,
      });

      for (let i = 0; i < cfg.numLayers; i++) {
        const input: Tensor = x;
        const table = rope;
        x = this.#withBlock(i, (w) => this.#block(i, w, input, byRow, table, context, [B, N, D], show));
        show(`transformer_blocks.${i}`, x);
        if (inFlight) {
          await inFlight;
          onBlock?.(i, cfg.numLayers);
        }
        throwIfAborted(signal, 'DiT forward');
        inFlight = this.device.synchronize();
      }

      // Final layer: LayerNorm (no affine) modulated by e itself: shift = table[0] + e, scale = table[1] + e.
      using table = this.#w('scale_shift_table').reshape(2, 1, D);
      using eRow = embedded.reshape(1, B, D);
      const shiftScale = scope.track(ops.add(table, eRow));
      const [shift, scale] = [0, 1].map((row) => scope.track(rowView(shiftScale, row, B, D)));
      const normed = scope.track(layerNorm(x, { scale: scale!, shift: shift!, eps: cfg.normEps }));
      x.dispose();
      x = undefined;
      const projected = scope.track(ops.linear(normed, this.#w('proj_out.weight'), this.#w('proj_out.bias')));
      const output = unpatchify(projected, [B, F, cfg.outChannels, H, W], p);
      try {
        await inFlight;
      } catch (error) {
        output.dispose();
        throw error;
      }
      inFlight = undefined;
      onBlock?.(cfg.numLayers, cfg.numLayers);
      return output;
    } catch (error) {
      x?.dispose();
      throw error;
    } finally {
      scope.dispose();
      rope?.dispose();
      // Never leave a device wait behind (an unobserved rejection), e.g. after an abort.
      if (inFlight) await inFlight.catch(() => undefined);
    }
  }

  /**
   * The 'teacache' step cache's signal (lib/sampler/cache.ts): the first block's modulated input
   * LN1(x)·(1 + scale_msa) + shift_msa for latents [B, F, C, H, W] (model dtype) at one timestep, on
   * up to 8 evenly spaced windows of 256 patch tokens (a few thousand of the 75,888 at the released
   * size, so the probe costs a patch embedding of those tokens, not a block), as host floats.
   */
  async cacheProbe(latents: Tensor, timestep: number): Promise<Float32Array> {
    const cfg = this.config;
    const p = cfg.patchSize;
    const [B, F, , H, W] = latents.shape as [number, number, number, number, number];
    const N = F * (H / p) * (W / p);
    const D = cfg.innerDim;
    using scope = new TensorScope();
    const patches = scope.track(patchify(latents, p));
    const windows = Math.min(8, N);
    const length = Math.min(256, Math.floor(N / windows));
    const picked = Array.from({ length: windows }, (_, k) => {
      const start = Math.floor((k * (N - length)) / Math.max(1, windows - 1));
      return scope.track(ops.slice(patches, 1, start, start + length));
    });
    const sampled = scope.track(picked.length === 1 ? picked[0]!.reshape(picked[0]!.shape) : ops.concat(picked, 1));
    const x = scope.track(ops.linear(sampled, this.#patchWeight, this.#w('pos_embed.proj.bias')));
    const { byRow } = this.#modulation(new Array<number>(B).fill(timestep), B, scope);
    const modulated = this.#withBlock(0, (w) => {
      using table = w.tensor('scale_shift_table').reshape(6, 1, D);
      using rows = ops.add(byRow, table);
      using shift = rowView(rows, 0, B, D);
      using scale = rowView(rows, 1, B, D);
      return layerNorm(x, { weight: w.tensor('norm1.weight'), bias: w.tensor('norm1.bias'), scale, shift, eps: cfg.blockNormEps });
    });
    using held = modulated;
    return held.toFloat32();
  }

  /**
   * Timestep → embedded_timestep e [B, D] → AdaLN-Single modulation m [B, 6D] shared by every block,
   * and m as [6, B, D] (row j of every block's table + m is then a [B, D] view: AdaLN groups = batch).
   * Everything is tracked by `scope`.
   */
  #modulation(timestep: readonly number[], B: number, scope: TensorScope): { embedded: Tensor; modulation: Tensor; byRow: Tensor } {
    const cfg = this.config;
    const sinusoid = timestepSinusoid(timestep, { channels: cfg.timestepChannels, rescale: cfg.timestepRescale, numerics: this.numerics });
    const tEmb = scope.track(Tensor.from(sinusoid, [B, cfg.timestepChannels], { dtype: this.dtype, device: this.device }));
    const t1 = scope.track(ops.linear(tEmb, this.#w('adaln_single.emb.timestep_embedder.linear_1.weight'), this.#w('adaln_single.emb.timestep_embedder.linear_1.bias')));
    const t1Act = scope.track(ops.silu(t1));
    const embedded = scope.track(ops.linear(t1Act, this.#w('adaln_single.emb.timestep_embedder.linear_2.weight'), this.#w('adaln_single.emb.timestep_embedder.linear_2.bias')));
    const embeddedAct = scope.track(ops.silu(embedded));
    const modulation = scope.track(ops.linear(embeddedAct, this.#w('adaln_single.linear.weight'), this.#w('adaln_single.linear.bias')));
    const byRow = scope.track(modulationRows(modulation, B, cfg.innerDim));
    return { embedded, modulation, byRow };
  }

  /**
   * The forward with sequence parallelism (Ulysses) over the ranks of `comm`: the N patch tokens
   * are split into comm.size shards (the last padded with zero tokens to a multiple of the shard
   * size), each rank runs its shard through every block, and around each self-attention an
   * all-to-all swaps token sharding for head sharding (each rank then attends over all tokens with
   * numAttentionHeads / size heads) and back. Cross-attention, the FFN, AdaLN and the final layer
   * work on the local tokens; the padded tokens never reach a real token's attention (the keys are
   * cut to N before it) and are dropped at the end. The result equals forward()'s: every token's
   * arithmetic is the same, only where it runs differs (test/golden/dit-parallel.test.ts holds f32
   * to bit equality on the CPU).
   *
   * `context` is this model's context, used by every rank (ranks that share this model and its
   * device), or one context per rank, each prepared by that rank's replica of this model on
   * comm.devices[r] (rank 0: this model). Latents and the output are on this model's device.
   */
  async forwardSequenceParallel(latents: Tensor, timestep: readonly number[], context: DiTContext | readonly DiTContext[], comm: Communicator, options: DiTForwardOptions = {}): Promise<Tensor> {
    const { signal, onBlock } = options;
    const cfg = this.config;
    const ranks = comm.size;
    const contexts: readonly DiTContext[] = context instanceof DiTContext ? Array.from({ length: ranks }, () => context) : context;
    this.#checkRanks(contexts, comm);
    const { B, F, H, W, p, Hp, Wp, D, N } = this.#checkForwardInputs(latents, timestep, contexts[0]!);
    const models = contexts.map((c) => c.owner);
    throwIfAborted(signal, 'DiT forward');
    const shard = Math.ceil(N / ranks);
    const padded = shard * ranks;
    const localHeads = cfg.numAttentionHeads / ranks;
    const headWidth = D / cfg.numAttentionHeads;
    const noCapture = () => undefined;
    const devices = [...new Set(comm.devices)];
    const synchronize = () => Promise.all(devices.map((d) => d.synchronize()));

    const scope = new TensorScope();
    let xs: Array<Tensor | undefined> = [];
    try {
      const tokens = scope.track(padTokens(patchify(latents, p), padded));
      for (let r = 0; r < ranks; r++) {
        using patches = ops.slice(tokens, 1, r * shard, (r + 1) * shard);
        using local = await patches.to(comm.devices[r]!);
        xs.push(ops.linear(local, models[r]!.#patchWeight, models[r]!.#w('pos_embed.proj.bias')));
      }
      tokens.dispose();
      const perRank = models.map((model) => model.#modulation(timestep, B, scope));
      const ropes = models.map((model) => Rope3D.create([F, Hp, Wp], { split: cfg.ropeSplit, theta: cfg.ropeTheta, angles: model.numerics === 'bf16-official' ? 'bf16-official' : 'exact', device: model.device }));
      try {
        for (let i = 0; i < cfg.numLayers; i++) {
          const weights: BlockWeights[] = [];
          const blockScope = new TensorScope();
          const open: OpenBlock[] = [];
          try {
            for (const model of models) weights.push(model.#blocks.acquire(i));
            for (let r = 0; r < ranks; r++) {
              open.push(models[r]!.#openBlock(i, weights[r]!, xs[r]!, perRank[r]!.byRow, [B, shard, D], contexts[r]!.lora));
              xs[r] = undefined;  // the open block owns the input now
            }
            // Tokens → heads: rank r gets every rank's tokens of its heads, cut to the N real tokens.
            const qkvWidth = localHeads * 3 * headWidth;
            const qkvParts = open.map((o) => {
              using qkv = o.takeQkv();
              return Array.from({ length: ranks }, (_, r) => blockScope.track(ops.slice(qkv, 2, r * qkvWidth, (r + 1) * qkvWidth)));
            });
            const gathered = await comm.allToAll(qkvParts);
            for (const row of gathered) for (const t of row) blockScope.track(t);
            for (const row of qkvParts) for (const t of row) t.dispose();
            const mixed = gathered.map((parts, r) => {
              using all = ops.concat(parts, 1);
              for (const t of parts) t.dispose();
              const qkv = ops.slice(all, 1, 0, N);
              return blockScope.track(padTokens(models[r]!.#selfAttention(weights[r]!, qkv, localHeads, ropes[r]!), padded));
            });
            // Heads → tokens: rank s gets its token shard of every rank's heads, heads in rank order.
            const mixedParts = mixed.map((m) => Array.from({ length: ranks }, (_, r) => blockScope.track(ops.slice(m, 1, r * shard, (r + 1) * shard))));
            for (const m of mixed) m.dispose();
            const back = await comm.allToAll(mixedParts);
            for (const row of back) for (const t of row) blockScope.track(t);
            for (const row of mixedParts) for (const t of row) t.dispose();
            for (let r = 0; r < ranks; r++) {
              const heads = ops.concat(back[r]!, 2);
              for (const t of back[r]!) t.dispose();
              xs[r] = models[r]!.#closeBlock(i, weights[r]!, open[r]!, heads, contexts[r]!, [B, shard, D], noCapture);
            }
          } finally {
            for (const o of open) o[Symbol.dispose]();
            blockScope.dispose();
            weights.forEach((_, r) => models[r]!.#blocks.release(i));
          }
          await synchronize();
          if (i + 1 < cfg.numLayers) onBlock?.(i + 1, cfg.numLayers);
          throwIfAborted(signal, 'DiT forward');
        }
      } finally {
        for (const rope of ropes) rope.dispose();
      }

      // Final layer on each rank's tokens; the tokens come back to rank 0's device.
      const projected: Tensor[] = [];
      for (let r = 0; r < ranks; r++) {
        const model = models[r]!;
        using table = model.#w('scale_shift_table').reshape(2, 1, D);
        using eRow = perRank[r]!.embedded.reshape(1, B, D);
        using shiftScale = ops.add(table, eRow);
        using shift = rowView(shiftScale, 0, B, D);
        using scale = rowView(shiftScale, 1, B, D);
        using normed = layerNorm(xs[r]!, { scale, shift, eps: cfg.normEps });
        xs[r]!.dispose();
        xs[r] = undefined;
        using local = ops.linear(normed, model.#w('proj_out.weight'), model.#w('proj_out.bias'));
        projected.push(scope.track(await local.to(this.device)));
      }
      const all = scope.track(ops.concat(projected, 1));
      using real = ops.slice(all, 1, 0, N);
      const output = unpatchify(real, [B, F, cfg.outChannels, H, W], p);
      try {
        await synchronize();
      } catch (error) {
        output.dispose();
        throw error;
      }
      onBlock?.(cfg.numLayers, cfg.numLayers);
      return output;
    } finally {
      for (const x of xs) x?.dispose();
      scope.dispose();
    }
  }

  /** The ranks of a sequence-parallel forward: a degree dividing the heads; per rank a replica of this model on the rank's device. */
  #checkRanks(contexts: readonly DiTContext[], comm: Communicator): void {
    const cfg = this.config;
    const ranks = comm.size;
    if (cfg.numAttentionHeads % ranks !== 0) {
      throw new StepVideoError('ERR_ARGUMENT', `sequence parallelism needs a degree dividing the ${cfg.numAttentionHeads} attention heads`, { got: ranks });
    }
    if (contexts.length !== ranks || contexts[0]!.owner !== this) {
      throw new StepVideoError('ERR_ARGUMENT', `sequence parallelism over ${ranks} ranks needs this model's context, or one context per rank with rank 0's from this model`, { got: `${contexts.length} contexts` });
    }
    contexts.forEach((c, r) => {
      const replica = c.owner;
      if (replica.device !== comm.devices[r]) {
        throw new StepVideoError('ERR_DEVICE', `rank ${r}'s model is not on the rank's device`, { expected: comm.devices[r]!.name, got: replica.device.name });
      }
      if (replica !== this && (JSON.stringify(replica.config) !== JSON.stringify(cfg) || replica.dtype !== this.dtype || replica.numerics !== this.numerics)) {
        throw new StepVideoError('ERR_ARGUMENT', `rank ${r}'s model is not a replica of rank 0's (config, dtype or numerics differ)`);
      }
      if (c.disposed || replica.disposed) throw new StepVideoError('ERR_DISPOSED', `rank ${r}'s model or context was used after dispose()`);
    });
  }

  /** Checks a forward's inputs; returns its sizes: latents [B, F, C, H, W], patch p, the Hp x Wp patch grid, width D, N tokens. */
  #checkForwardInputs(latents: Tensor, timestep: readonly number[], context: DiTContext): { B: number; F: number; H: number; W: number; p: number; Hp: number; Wp: number; D: number; N: number } {
    const cfg = this.config;
    if (this.disposed) throw new StepVideoError('ERR_DISPOSED', 'the DiT was used after dispose()');
    if (context.owner !== this) throw new StepVideoError('ERR_ARGUMENT', 'the DiT context was prepared by another model');
    if (context.disposed) throw new StepVideoError('ERR_DISPOSED', 'the DiT context was used after dispose()');
    const p = cfg.patchSize;
    const [B, , C, H, W] = latents.shape;
    if (latents.ndim !== 5 || C !== cfg.inChannels || H! % p !== 0 || W! % p !== 0 || H === 0 || W === 0) {
      throw new StepVideoError('ERR_SHAPE', 'DiT latents must be [B, F, C, H, W]', {
        tensor: 'hidden_states',
        expected: `[B, F, ${cfg.inChannels}, H, W] with H and W multiples of ${p}`,
        got: formatShape(latents.shape),
      });
    }
    if (latents.dtype !== this.dtype || latents.device !== this.device) {
      throw new StepVideoError('ERR_DTYPE', 'DiT latents must be in the model dtype on the model device', {
        tensor: 'hidden_states',
        expected: `${this.dtype} on ${this.device.name}`,
        got: `${latents.dtype} on ${latents.device.name}`,
      });
    }
    if (timestep.length !== B || context.batch !== B) {
      throw new StepVideoError('ERR_SHAPE', 'latents, timesteps and context must share the batch size', {
        tensor: 'timestep',
        expected: B,
        got: `${timestep.length} timesteps, context for ${context.batch}`,
      });
    }
    const [b, f, , h, w] = latents.shape as [number, number, number, number, number];
    return { B: b, F: f, H: h, W: w, p, Hp: h / p, Wp: w / p, D: cfg.innerDim, N: f * (h / p) * (w / p) };
  }

  /**
   * One StepVideoTransformerBlock (spec §2.3 step 4). Consumes `x` (disposed here) and returns the
   * new residual stream; every temporary is freed as soon as it is dead (lib/models/dit/memory-model.ts
   * counts the same lifetimes, and the tests hold it to the measured peak). The block runs in three
   * phases so that a sequence-parallel forward (forwardSequenceParallel) can swap token and head
   * sharding around the middle one.
   */
  #block(i: number, w: BlockWeights, x: Tensor, byRow: Tensor, rope: Rope3D, context: DiTContext, dims: [number, number, number], show: (name: string, t: Tensor) => void): Tensor {
    using open = this.#openBlock(i, w, x, byRow, dims, context.lora);
    const mixed = this.#selfAttention(w, open.takeQkv(), this.config.numAttentionHeads, rope);
    return this.#closeBlock(i, w, open, mixed, context, dims, show);
  }

  /** Phase 1: the modulation rows, then the fused q/k/v projection of LN1(x)·(1 + scale) + shift. */
  #openBlock(i: number, w: BlockWeights, x: Tensor, byRow: Tensor, [B, , D]: [number, number, number], lora: LoraAdapter | undefined): OpenBlock {
    const cfg = this.config;
    const scope = new TensorScope();
    try {
      // (shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp) = table + m, each [B, D].
      using table = w.tensor('scale_shift_table').reshape(6, 1, D);
      const rows = scope.track(ops.add(byRow, table));
      const modulation = [0, 1, 2, 3, 4, 5].map((r) => scope.track(rowView(rows, r, B, D)));
      const a = scope.track(layerNorm(x, { weight: w.tensor('norm1.weight'), bias: w.tensor('norm1.bias'), scale: modulation[1]!, shift: modulation[0]!, eps: cfg.blockNormEps }));
      const qkv = withLora(this.#linear(a, w.linear('attn1.wqkv.weight')), a, lora?.get(i, 'attn1.wqkv'));
      a.dispose();
      return new OpenBlock(scope, x, modulation, qkv);
    } catch (error) {
      scope.dispose();
      throw error;
    }
  }

  /**
   * Phase 2: qkv [B, N, heads·3·Dh] (consumed) → split heads with QK-Norm and 3D RoPE → attention →
   * [B, N, heads, Dh]. `heads` is all of them on one device, a shard of them under sequence parallelism.
   */
  #selfAttention(w: BlockWeights, qkv: Tensor, heads: number, rope: Rope3D): Tensor {
    const cfg = this.config;
    using scope = new TensorScope();
    scope.track(qkv);
    const self = splitHeads(qkv, { heads, layout: ['q', 'k', 'v'], qNorm: w.tensor('attn1.q_norm.weight'), kNorm: w.tensor('attn1.k_norm.weight'), eps: cfg.qkNormEps, rope });
    const [q, k, v] = [self.q!, self.k!, self.v!].map((t) => scope.track(t));
    qkv.dispose();
    const mixed = attention(q!, k!, v!);
    for (const t of [q!, k!, v!]) t.dispose();
    return mixed;
  }

  /** Phase 3: the output projection's gated residual, cross-attention, the FFN. Consumes `mixed` and the block's input. */
  #closeBlock(i: number, w: BlockWeights, open: OpenBlock, mixed: Tensor, context: DiTContext, [B, N, D]: [number, number, number], show: (name: string, t: Tensor) => void): Tensor {
    const cfg = this.config;
    const heads = cfg.numAttentionHeads;
    using scope = new TensorScope();
    const dead = (...tensors: Tensor[]) => tensors.forEach((t) => t.dispose());
    const name = (part: string) => `transformer_blocks.${i}.${part}`;
    const [, , gateMsa, shiftMlp, scaleMlp, gateMlp] = open.modulation;
    scope.track(mixed);
    const x = open.takeInput();
    scope.track(x);
    const lora = context.lora;
    const mixedTokens = scope.track(mixed.reshape(B, N, D));
    dead(mixed);
    // An adapter's delta is taken before the fused residual consumes its input, then gated in after.
    const attnDelta = lora?.get(i, 'attn1.wo') ? scope.track(loraDelta(mixedTokens, lora.get(i, 'attn1.wo')!)) : undefined;
    const x1 = scope.track(withGatedDelta(this.#linearResidual(mixedTokens, w.linear('attn1.wo.weight'), x, gateMsa, name('attn1'), show), attnDelta, gateMsa, B, D));
    dead(x);

    // Cross-attention on the raw stream: no norm, no modulation, no gate.
    const qProj = scope.track(withLora(this.#linear(x1, w.linear('attn2.wq.weight')), x1, lora?.get(i, 'attn2.wq')));
    const q2 = scope.track(splitHeads(qProj, { heads, layout: ['q'], qNorm: w.tensor('attn2.q_norm.weight'), eps: cfg.qkNormEps }).q!);
    dead(qProj);
    const crossMixed = scope.track(attention(q2, context.crossKeys[i]!, context.crossValues[i]!, { kvLen: context.kvLen }));
    dead(q2);
    const crossTokens = scope.track(crossMixed.reshape(B, N, D));
    dead(crossMixed);
    const crossDelta = lora?.get(i, 'attn2.wo') ? scope.track(loraDelta(crossTokens, lora.get(i, 'attn2.wo')!)) : undefined;
    const x2 = scope.track(withGatedDelta(this.#linearResidual(crossTokens, w.linear('attn2.wo.weight'), x1, undefined, name('attn2'), show), crossDelta, undefined, B, D));
    dead(x1);

    // FFN on LN2(x)·(1 + scale) + shift: W2·GELU_tanh(W1·b), no biases; gated residual.
    const b = scope.track(layerNorm(x2, { weight: w.tensor('norm2.weight'), bias: w.tensor('norm2.bias'), scale: scaleMlp!, shift: shiftMlp!, eps: cfg.blockNormEps }));
    const proj = lora?.get(i, 'ff.net.0.proj');
    // With an adapter the GELU runs after the sum, so the Linear's fused epilogue cannot be used.
    const hidden = scope.track(proj ? geluAfter(withLora(this.#linear(b, w.linear('ff.net.0.proj.weight')), b, proj)) : this.#linear(b, w.linear('ff.net.0.proj.weight'), 'gelu_tanh'));
    dead(b);
    const ffDelta = lora?.get(i, 'ff.net.2') ? scope.track(loraDelta(hidden, lora.get(i, 'ff.net.2')!)) : undefined;
    const out = withGatedDelta(this.#linearResidual(hidden, w.linear('ff.net.2.weight'), x2, gateMlp, name('ff'), show), ffDelta, gateMlp, B, D);
    dead(x2);
    return out;
  }
}

/**
 * What phase 1 of a block leaves for the others: the six modulation rows (with the [6, B, D] table
 * they view), the block's input (the residual stream) and the q/k/v projection until taken.
 */
class OpenBlock implements Disposable {
  readonly modulation: readonly Tensor[];
  readonly #scope: TensorScope;
  #input: Tensor | undefined;
  #qkv: Tensor | undefined;

  constructor(scope: TensorScope, input: Tensor, modulation: Tensor[], qkv: Tensor) {
    this.#scope = scope;
    this.#input = input;
    this.modulation = modulation;
    this.#qkv = qkv;
  }

  takeQkv(): Tensor {
    const qkv = this.#qkv!;
    this.#qkv = undefined;
    return qkv;
  }

  takeInput(): Tensor {
    const input = this.#input!;
    this.#input = undefined;
    return input;
  }

  /** Frees what was not taken (after an error: the input too, as #block would have). */
  [Symbol.dispose](): void {
    this.#qkv?.dispose();
    this.#input?.dispose();
    this.#scope.dispose();
  }
}

/** @internal See StepVideoDiT.trainingInternals. */
export interface DiTTrainingInternals {
  weight(name: string): Tensor;
  withBlock<T>(block: number, body: (weights: BlockWeights) => T): T;
  linear(x: Tensor, weight: LinearWeight): Tensor;
  modulation(timestep: readonly number[], B: number, scope: TensorScope): { embedded: Tensor; modulation: Tensor; byRow: Tensor };
}

/** The execution options, validated, with their defaults for the device. */
function resolveExecution(options: DiTLoadOptions, device: Device): DiTExecution {
  const weights = options.weights ?? 'model';
  if (weights !== 'model' && weights !== 'fp8') {
    throw new StepVideoError('ERR_ARGUMENT', 'unknown DiT weight format', { expected: "'model' or 'fp8'", got: weights });
  }
  const fp8Activations = options.fp8Activations ?? (device.isCuda ? 'per-row' : 'none');
  if (fp8Activations !== 'none' && fp8Activations !== 'per-row') {
    throw new StepVideoError('ERR_ARGUMENT', 'unknown FP8 activation mode', { expected: "'none' or 'per-row'", got: fp8Activations });
  }
  return { weights, fp8Activations, fusedResidual: options.fusedResidual ?? false, streaming: options.streaming ?? false };
}

/** out + gate ⊙ delta (gate [B, D] over the tokens of delta [B, N, D]), consuming out; out without a delta. */
function withGatedDelta(out: Tensor, delta: Tensor | undefined, gate: Tensor | undefined, B: number, D: number): Tensor {
  if (delta === undefined) return out;
  using base = out;
  if (gate === undefined) return ops.add(base, delta);
  using rows = gate.reshape(B, 1, D);
  using gated = ops.mul(delta, rows);
  return ops.add(base, gated);
}

/** GELU (tanh) of x, consuming x. */
function geluAfter(x: Tensor): Tensor {
  using pre = x;
  return ops.geluTanh(pre);
}

/** [B, 6·D] → [6, B, D] (a copy), so that each modulation row is a contiguous [B, D] slice. */
function modulationRows(modulation: Tensor, B: number, D: number): Tensor {
  using split = modulation.reshape(B, 6, D);
  return ops.permute(split, [1, 0, 2]);
}

/** Row r of a [R, B, D] tensor as a [B, D] view. */
export function rowView(t: Tensor, r: number, B: number, D: number): Tensor {
  using row = t.narrow(r, 1);
  return row.reshape(B, D);
}

/** [B, N, ...] → [B, total, ...] with zero tokens appended. Consumes `tokens` (returned as is when N == total). */
function padTokens(tokens: Tensor, total: number): Tensor {
  const n = tokens.shape[1]!;
  if (n === total) return tokens;
  using consumed = tokens;
  using zeros = Tensor.zeros([tokens.shape[0]!, total - n, ...tokens.shape.slice(2)], tokens.dtype, tokens.device);
  return ops.concat([consumed, zeros], 1);
}

/** latents [B, F, C, H, W] → patch tokens [B, F·(H/p)·(W/p), C·p·p], token order (f, h, w), features (c, i, j). */
function patchify(latents: Tensor, p: number): Tensor {
  const [B, F, C, H, W] = latents.shape as [number, number, number, number, number];
  using grid = latents.reshape(B * F, C, H / p, p, W / p, p);
  using tokens = ops.permute(grid, [0, 2, 4, 1, 3, 5]);
  return tokens.reshape(B, F * (H / p) * (W / p), C * p * p);
}

/** proj_out tokens [B, N, p·p·C] (features (i, j, c)) → [B, F, C, H, W] (official unpatchify). */
function unpatchify(tokens: Tensor, [B, F, C, H, W]: [number, number, number, number, number], p: number): Tensor {
  using grid = tokens.reshape(B * F, H / p, W / p, p, p, C);
  using image = ops.permute(grid, [0, 5, 1, 3, 2, 4]);
  return image.reshape(B, F, C, H, W);
}
