// Hunyuan-CLIP: HunyuanDiT's bilingual text tower, a BERT encoder (transformers.BertModel) whose
// last hidden state feeds the DiT (the pooler output is discarded).
//
//   x = LayerNorm(word[ids] + token_type[0] + position[0..S))
//   per layer:  h = LayerNorm(x + dense(attn(query(x), key(x), value(x))))     pads masked
//               x = LayerNorm(h + output(gelu_erf(intermediate(h))))
//
// Padding is masked inside attention through per-sequence key lengths, which requires the
// attention mask to be a right-padding prefix mask (what the BERT tokenizer produces). The
// official server runs it in f32, on the GPU too; bf16 is optional.
import { existsSync } from 'node:fs';
import path from 'node:path';

import { type Device, type DeviceSpec, getDevice } from '../../device.js';
import { StepVideoError, throwIfAborted } from '../../errors.js';
import { openWeights, stripPrefix } from '../../io/index.js';
import { type LoadProgress, Weights } from '../../io/load.js';
import { attention } from '../../kernels/attention.js';
import { type TokenIds, embedding } from '../../kernels/embedding.js';
import { layerNorm } from '../../kernels/norm.js';
import { add, gelu, linear, permute } from '../../ops.js';
import { formatShape } from '../../shape.js';
import { Tensor, TensorScope } from '../../tensor.js';
import { type ComputeDType, resolveComputeDType } from '../compute-dtype.js';
import { ConfigJson } from '../json-config.js';
import { type WeightSource, checkWeightSource } from '../weight-source.js';
import { CLIP_UNUSED_TENSORS, type ClipConfig, checkClipWeights, clipWeightSpec, layerPrefix, parseClipConfig } from './config.js';

export interface ClipLoadOptions {
  device?: DeviceSpec;
  /** Compute dtype; default f32 everywhere (as the official server runs it). */
  dtype?: ComputeDType;
  /** The weights file; default the folder's pytorch_model.bin (the released file), else its safetensors. */
  weightsFile?: string;
  signal?: AbortSignal;
  onProgress?: (progress: LoadProgress) => void;
}

/** A mask as int32/int64 host elements, [B, S]. */
export type MaskValues = Int32Array | BigInt64Array;

/**
 * Per-sequence key lengths from an attention mask [B, S]: each row must be ones followed by zeros
 * (right padding) with at least one valid token. Anything else is ERR_ARGUMENT naming the row.
 */
export function keyLengthsFromMask(mask: MaskValues, batch: number, length: number): Int32Array {
  if (mask.length !== batch * length) {
    throw new StepVideoError('ERR_SHAPE', 'attention_mask must match input_ids', { tensor: 'attention_mask', expected: `${batch * length} values for [${batch}, ${length}]`, got: mask.length });
  }
  const lengths = new Int32Array(batch);
  for (let b = 0; b < batch; b++) {
    const row = Array.from(mask.subarray(b * length, (b + 1) * length), Number);
    const valid = row.indexOf(0) === -1 ? length : row.indexOf(0);
    if (row.some((v, j) => v !== (j < valid ? 1 : 0))) {
      throw new StepVideoError('ERR_ARGUMENT', `attention_mask row ${b} is not a right-padding prefix mask`, {
        tensor: 'attention_mask',
        expected: 'ones followed by zeros (values 0/1)',
        got: `[${row.join(', ')}]`,
      });
    }
    if (valid === 0) {
      throw new StepVideoError('ERR_ARGUMENT', `attention_mask row ${b} has no valid token`, { tensor: 'attention_mask', expected: 'at least the [CLS] position set', got: 0 });
    }
    lengths[b] = valid;
  }
  return lengths;
}

export class ClipTextEncoder implements Disposable {
  readonly config: ClipConfig;
  readonly device: Device;
  readonly dtype: ComputeDType;
  #weights: WeightSource | undefined;

  /**
   * An encoder over tensors that already live on `device` in `dtype` (e.g. random weights for a
   * benchmark); every tensor of the spec is checked for presence, shape and dtype. Takes ownership.
   */
  constructor(config: ClipConfig, weights: WeightSource, device: Device, dtype: ComputeDType) {
    checkWeightSource('Hunyuan-CLIP', weights, clipWeightSpec(config), dtype, device);
    this.config = config;
    this.#weights = weights;
    this.device = device;
    this.dtype = dtype;
  }

  /** Loads hunyuan_clip/clip_text_encoder/ (config.json + weights, keys prefixed `bert.`). */
  static async load(dir: string, options: ClipLoadOptions = {}): Promise<ClipTextEncoder> {
    const device = getDevice(options.device);
    const dtype = resolveComputeDType(device, options.dtype, 'f32', 'Hunyuan-CLIP');
    const configJson = await ConfigJson.read(path.join(dir, 'config.json'));
    const config = parseClipConfig(configJson);
    const released = path.join(dir, 'pytorch_model.bin');
    const source = options.weightsFile ?? (existsSync(released) ? released : dir);
    const index = stripPrefix(await openWeights(source), 'bert.');
    checkClipWeights(config, index, configJson);
    const weights = await Weights.load(index, clipWeightSpec(config), {
      device,
      dtype,
      allowUnexpected: [...CLIP_UNUSED_TENSORS],
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    try {
      return new ClipTextEncoder(config, weights, device, dtype);
    } catch (error) {
      weights.dispose();
      throw error;
    }
  }

  /**
   * input_ids and attention_mask [B, S] (host) → last_hidden_state [B, S, hidden] in the compute
   * dtype on the model's device (pad positions included, as BertModel returns them).
   */
  async forward(inputIds: TokenIds, attentionMask: MaskValues, shape: readonly [number, number], options: { signal?: AbortSignal } = {}): Promise<Tensor> {
    const { signal } = options;
    throwIfAborted(signal, 'Hunyuan-CLIP forward');
    const [batch, length] = shape;
    if (!Number.isInteger(batch) || !Number.isInteger(length) || batch < 1 || length < 1 || length > this.config.maxPositions) {
      throw new StepVideoError('ERR_SHAPE', 'Hunyuan-CLIP: input_ids must be [B, S] with 1 <= S <= max_position_embeddings', {
        tensor: 'input_ids',
        expected: `[B, <= ${this.config.maxPositions}]`,
        got: formatShape(shape),
      });
    }
    const lengths = keyLengthsFromMask(attentionMask, batch, length);
    using kvLen = Tensor.from(lengths, [batch], { device: this.device });
    let x = this.#embed(inputIds, batch, length);
    try {
      for (let l = 0; l < this.config.numLayers; l++) {
        const next = this.#layer(x, l, kvLen, batch, length);
        x.dispose();
        x = next;
        if (signal) {
          await this.device.synchronize();
          throwIfAborted(signal, 'Hunyuan-CLIP forward');
        }
      }
      return x;
    } catch (error) {
      x.dispose();
      throw error;
    }
  }

  dispose(): void {
    this.#weights?.dispose();
    this.#weights = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #weight(name: string): Tensor {
    if (this.#weights === undefined) throw new StepVideoError('ERR_DISPOSED', 'Hunyuan-CLIP was used after dispose()');
    return this.#weights.get(name);
  }

  /** BertEmbeddings: (word + token_type 0) + absolute position, then LayerNorm (HF's order of sums). */
  #embed(inputIds: TokenIds, batch: number, length: number): Tensor {
    using scope = new TensorScope();
    const words = scope.track(embedding(this.#weight('embeddings.word_embeddings.weight'), inputIds, [batch, length], 'input_ids'));
    const tokenType = scope.track(this.#weight('embeddings.token_type_embeddings.weight').narrow(0, 1));
    const positions = scope.track(this.#weight('embeddings.position_embeddings.weight').narrow(0, length));
    const typed = scope.track(add(words, tokenType));
    const summed = scope.track(add(typed, positions));
    return this.#layerNorm(summed, 'embeddings.LayerNorm');
  }

  #layer(x: Tensor, layer: number, kvLen: Tensor, batch: number, length: number): Tensor {
    const p = layerPrefix(layer);
    using scope = new TensorScope();
    const q = scope.track(this.#heads(x, `${p}attention.self.query`, batch, length));
    const k = scope.track(this.#heads(x, `${p}attention.self.key`, batch, length));
    const v = scope.track(this.#heads(x, `${p}attention.self.value`, batch, length));
    const context = scope.track(attention(q, k, v, { kvLen }));
    const merged = scope.track(context.reshape(batch, length, this.config.hiddenSize));
    const attended = scope.track(this.#linear(merged, `${p}attention.output.dense`));
    const h = scope.track(this.#layerNorm(scope.track(add(attended, x)), `${p}attention.output.LayerNorm`));
    const inner = scope.track(gelu(scope.track(this.#linear(h, `${p}intermediate.dense`))));
    const out = scope.track(this.#linear(inner, `${p}output.dense`));
    return this.#layerNorm(scope.track(add(out, h)), `${p}output.LayerNorm`);
  }

  /** A projection split into heads: [B, S, D] → [B, H, S, hd]. */
  #heads(x: Tensor, name: string, batch: number, length: number): Tensor {
    using projected = this.#linear(x, name);
    using split = projected.reshape(batch, length, this.config.numHeads, this.config.headDim);
    return permute(split, [0, 2, 1, 3]);
  }

  #linear(x: Tensor, name: string): Tensor {
    return linear(x, this.#weight(`${name}.weight`), this.#weight(`${name}.bias`));
  }

  #layerNorm(x: Tensor, name: string): Tensor {
    return layerNorm(x, { weight: this.#weight(`${name}.weight`), bias: this.#weight(`${name}.bias`), eps: this.config.eps });
  }
}
