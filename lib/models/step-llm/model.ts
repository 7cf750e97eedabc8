// Step-LLM (stepvideo/text_encoder/stepllm.py, Step1Model): a pre-norm decoder without positional
// embeddings (positions live in the attention's ALiBi-sqrt bias), without a final norm and without
// an LM head. The output is the last layer's hidden states for every position, pads included.
//
//   x = tok_embeddings(ids)
//   per layer:  h = x + wo(attn(split(wqkv(rms(x)))))      causal, ALiBi-sqrt, grouped-query
//               x = h + w2(silu(u1) · u2),  [u1 | u2] = w1(rms(h))
//
// Precision (spec §5.1): bf16 weights and activations with f32 accumulation on CUDA, the RMSNorm
// rounding of the official code; with fp32_residual_connection the residual stream stays f32 and
// only the layer inputs are rounded to bf16, as autocast does. The CPU backend computes in f32.
import path from 'node:path';

import { type Device, type DeviceSpec, getDevice } from '../../device.js';
import { StepVideoError, throwIfAborted } from '../../errors.js';
import { openWeights } from '../../io/index.js';
import { type LoadProgress, Weights } from '../../io/load.js';
import { attention } from '../../kernels/attention.js';
import { type TokenIds, embedding } from '../../kernels/embedding.js';
import { rmsNorm } from '../../kernels/norm.js';
import { swiglu } from '../../kernels/swiglu.js';
import { add, cast, linear, permute, slice } from '../../ops.js';
import { formatShape } from '../../shape.js';
import { type Tensor, TensorScope } from '../../tensor.js';
import { type ComputeDType, resolveComputeDType } from '../compute-dtype.js';
import { ConfigJson } from '../json-config.js';
import { type WeightSource, checkWeightSource } from '../weight-source.js';
import { EMBEDDING, type StepLlmConfig, checkStepLlmWeights, layerPrefix, parseStepLlmConfig, stepLlmWeightSpec } from './config.js';

export interface StepLlmLoadOptions {
  device?: DeviceSpec;
  /** Compute dtype; default bf16 on CUDA (official), f32 on the CPU (the only one it has). */
  dtype?: ComputeDType;
  signal?: AbortSignal;
  onProgress?: (progress: LoadProgress) => void;
}

export interface ForwardOptions {
  /** Checked between layers (the device is synchronised there so that an abort stops real work). */
  signal?: AbortSignal;
}

export class StepLlm implements Disposable {
  readonly config: StepLlmConfig;
  readonly device: Device;
  readonly dtype: ComputeDType;
  #weights: WeightSource | undefined;
  /** f32 copies of the norm weights when an f32 residual stream meets bf16 layers. */
  readonly #f32NormWeights = new Map<string, Tensor>();

  /**
   * A model over tensors that already live on `device` in `dtype` (e.g. random weights for a
   * benchmark); every tensor of the spec is checked for presence, shape and dtype. Takes ownership.
   */
  constructor(config: StepLlmConfig, weights: WeightSource, device: Device, dtype: ComputeDType) {
    checkWeightSource('Step-LLM', weights, stepLlmWeightSpec(config), dtype, device);
    this.config = config;
    this.device = device;
    this.dtype = dtype;
    this.#weights = weights;
    if (config.fp32Residual && dtype !== 'f32') {
      for (let l = 0; l < config.numLayers; l++) {
        for (const norm of ['attention_norm', 'ffn_norm']) {
          const name = `${layerPrefix(l)}${norm}.weight`;
          this.#f32NormWeights.set(name, cast(weights.get(name), 'f32'));
        }
      }
    }
  }

  /** Loads step_llm/ (config.json + model.safetensors or the sharded index) onto a device. */
  static async load(dir: string, options: StepLlmLoadOptions = {}): Promise<StepLlm> {
    const device = getDevice(options.device);
    const dtype = resolveComputeDType(device, options.dtype, 'bf16', 'Step-LLM');
    const configJson = await ConfigJson.read(path.join(dir, 'config.json'));
    const config = parseStepLlmConfig(configJson);
    const index = await openWeights(dir, { basename: 'model' });
    checkStepLlmWeights(config, index, configJson);
    const weights = await Weights.load(index, stepLlmWeightSpec(config), {
      device,
      dtype,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    try {
      return new StepLlm(config, weights, device, dtype);
    } catch (error) {
      weights.dispose();
      throw error;
    }
  }

  /**
   * input_ids [B, S] (host) → last hidden states [B, S, hidden] on the model's device: in the
   * compute dtype, or f32 when the residual stream is f32. The caller owns the result.
   */
  async forward(inputIds: TokenIds, shape: readonly [number, number], options: ForwardOptions = {}): Promise<Tensor> {
    const { signal } = options;
    throwIfAborted(signal, 'Step-LLM forward');
    const [batch, length] = shape;
    if (!Number.isInteger(batch) || !Number.isInteger(length) || batch < 1 || length < 1) {
      throw new StepVideoError('ERR_SHAPE', 'Step-LLM: input_ids must be [B, S] with B, S >= 1', { tensor: 'input_ids', got: formatShape(shape) });
    }
    let x = this.#embed(inputIds, batch, length);
    try {
      for (let l = 0; l < this.config.numLayers; l++) {
        const next = this.#layer(x, l, batch, length);
        x.dispose();
        x = next;
        if (signal) {
          await this.device.synchronize();
          throwIfAborted(signal, 'Step-LLM forward');
        }
      }
      return x;
    } catch (error) {
      x.dispose();
      throw error;
    }
  }

  dispose(): void {
    for (const tensor of this.#f32NormWeights.values()) tensor.dispose();
    this.#f32NormWeights.clear();
    this.#weights?.dispose();
    this.#weights = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #weight(name: string): Tensor {
    if (this.#weights === undefined) throw new StepVideoError('ERR_DISPOSED', 'Step-LLM was used after dispose()');
    return this.#weights.get(name);
  }

  get #residualDType(): ComputeDType {
    return this.config.fp32Residual ? 'f32' : this.dtype;
  }

  #embed(inputIds: TokenIds, batch: number, length: number): Tensor {
    const x = embedding(this.#weight(EMBEDDING), inputIds, [batch, length], 'input_ids');
    if (x.dtype === this.#residualDType) return x;
    using rounded = x;
    return cast(rounded, this.#residualDType);
  }

  #layer(x: Tensor, layer: number, batch: number, length: number): Tensor {
    using scope = new TensorScope();
    const p = layerPrefix(layer);
    const attentionIn = scope.track(this.#norm(x, `${p}attention_norm.weight`));
    const h = scope.track(this.#residual(x, scope.track(this.#attention(attentionIn, p, batch, length))));
    const ffnIn = scope.track(this.#norm(h, `${p}ffn_norm.weight`));
    return this.#residual(h, scope.track(this.#feedForward(ffnIn, p)));
  }

  /** RMSNorm of the residual stream, returned in the compute dtype (the layers' input). */
  #norm(x: Tensor, name: string): Tensor {
    if (x.dtype === this.dtype) return rmsNorm(x, this.#weight(name), this.config.eps);
    using normed = rmsNorm(x, this.#f32NormWeights.get(name)!, this.config.eps);
    return cast(normed, this.dtype);
  }

  #residual(x: Tensor, branch: Tensor): Tensor {
    if (branch.dtype === x.dtype) return add(x, branch);
    using widened = cast(branch, x.dtype);
    return add(x, widened);
  }

  /**
   * wqkv rows are [Q of every head (head-major) ; per KV group g: k (head_dim) | v (head_dim)].
   * q → [B, H, S, hd]; k, v → [B, G, S, hd]; causal ALiBi-sqrt attention with grouped queries.
   */
  #attention(a: Tensor, p: string, batch: number, length: number): Tensor {
    const { hiddenSize: D, numHeads: H, numGroups: G, headDim: hd } = this.config;
    using scope = new TensorScope();
    const qkv = scope.track(linear(a, this.#weight(`${p}attention.wqkv.weight`)));
    const qRows = scope.track(slice(qkv, -1, 0, D));
    const q = scope.track(permute(scope.track(qRows.reshape(batch, length, H, hd)), [0, 2, 1, 3]));
    const kvRows = scope.track(slice(qkv, -1, D, D + 2 * hd * G));
    // [B, S, G, (k|v), hd] → [(k|v), B, G, S, hd]: k and v become the two halves along dim 0.
    const kv = scope.track(permute(scope.track(kvRows.reshape(batch, length, G, 2, hd)), [3, 0, 2, 1, 4]));
    const k = scope.track(scope.track(kv.narrow(0, 1)).reshape(batch, G, length, hd));
    const v = scope.track(scope.track(kv.narrow(1, 1)).reshape(batch, G, length, hd));
    const heads = scope.track(attention(q, k, v, { causal: true, alibiSqrt: true }));
    const merged = scope.track(heads.reshape(batch, length, D));
    return linear(merged, this.#weight(`${p}attention.wo.weight`));
  }

  /** SwiGLU: w2(silu(u1) · u2) with [u1 | u2] the two halves of w1's output. */
  #feedForward(f: Tensor, p: string): Tensor {
    using gateUp = linear(f, this.#weight(`${p}feed_forward.w1.weight`));
    using gated = swiglu(gateUp);
    return linear(gated, this.#weight(`${p}feed_forward.w2.weight`));
  }
}
