// The caption encoder: what the official caption server (api/call_remote_server.py, /caption-api)
// computes for a list of prompts, ready for the sampler.
//   y      [B, 320, hidden]  Step-LLM last hidden states (every position, pads included)
//   yMask  [B, 397]          77 ones (every CLIP position counts) then the Step-LLM mask
//   clip   [B, 77, 1024]     Hunyuan-CLIP last_hidden_state
import path from 'node:path';

import { type Device, type DeviceSpec, getDevice } from '../device.js';
import { StepVideoError, throwIfAborted } from '../errors.js';
import type { LoadProgress } from '../io/load.js';
import { cast } from '../ops.js';
import type { Tensor } from '../tensor.js';
import { CLIP_TOKENS, LLM_TOKENS } from '../tokenizers/caption-lengths.js';
import { BertTokenizer } from '../tokenizers/wordpiece.js';
import { StepTokenizer } from '../tokenizers/step-tokenizer.js';
import { ClipTextEncoder } from './clip/index.js';
import { type ComputeDType, resolveComputeDType } from './compute-dtype.js';
import { StepLlm } from './step-llm/index.js';

export interface CaptionEncoderLoadOptions {
  device?: DeviceSpec;
  /** Step-LLM compute dtype; default bf16 on CUDA (official), f32 on the CPU. */
  llmDType?: ComputeDType;
  /** Hunyuan-CLIP compute dtype; default f32 (official, also on the GPU). */
  clipDType?: ComputeDType;
  /** dtype of the returned y and clip; default bf16 on CUDA (what the server returns), f32 on the CPU. */
  outputDType?: ComputeDType;
  signal?: AbortSignal;
  onProgress?: (progress: LoadProgress & { part: 'step-llm' | 'clip' }) => void;
  /** The SentencePiece model, relative to the model folder; default step_llm/step1_chat_tokenizer.model. */
  tokenizerModel?: string;
}

export interface EncodedPrompts {
  /** [B, 320, hidden] on the encoder's device. */
  y: Tensor;
  /** Host [B·397]: 77 ones, then the 320-entry Step-LLM attention mask, per prompt. */
  yMask: Int32Array;
  /** [B, 77, clip hidden] on the encoder's device. */
  clip: Tensor;
}

export class CaptionEncoder implements Disposable {
  readonly device: Device;
  readonly outputDType: ComputeDType;
  readonly llm: StepLlm;
  readonly clip: ClipTextEncoder;
  readonly stepTokenizer: StepTokenizer;
  readonly clipTokenizer: BertTokenizer;

  private constructor(parts: { device: Device; outputDType: ComputeDType; llm: StepLlm; clip: ClipTextEncoder; stepTokenizer: StepTokenizer; clipTokenizer: BertTokenizer }) {
    this.device = parts.device;
    this.outputDType = parts.outputDType;
    this.llm = parts.llm;
    this.clip = parts.clip;
    this.stepTokenizer = parts.stepTokenizer;
    this.clipTokenizer = parts.clipTokenizer;
  }

  /** Loads both encoders and both tokenizers from the released root (step_llm/, hunyuan_clip/). */
  static async load(modelDir: string, options: CaptionEncoderLoadOptions = {}): Promise<CaptionEncoder> {
    const device = getDevice(options.device);
    const outputDType = resolveComputeDType(device, options.outputDType, 'bf16', 'caption encoder outputDType');
    // Tokenizers first: they are cheap, and a wrong path should fail before gigabytes are read.
    const stepTokenizer = await StepTokenizer.load(path.resolve(modelDir, options.tokenizerModel ?? 'step_llm/step1_chat_tokenizer.model'));
    const clipTokenizer = BertTokenizer.fromPath(path.join(modelDir, 'hunyuan_clip', 'tokenizer'));
    const common = { device, ...(options.signal ? { signal: options.signal } : {}) };
    const progress = (part: 'step-llm' | 'clip') =>
      options.onProgress ? { onProgress: (p: LoadProgress) => options.onProgress!({ ...p, part }) } : {};
    const llm = await StepLlm.load(path.join(modelDir, 'step_llm'), { ...common, ...progress('step-llm'), ...(options.llmDType ? { dtype: options.llmDType } : {}) });
    try {
      const clip = await ClipTextEncoder.load(path.join(modelDir, 'hunyuan_clip', 'clip_text_encoder'), {
        ...common,
        ...progress('clip'),
        ...(options.clipDType ? { dtype: options.clipDType } : {}),
      });
      return new CaptionEncoder({ device, outputDType, llm, clip, stepTokenizer, clipTokenizer });
    } catch (error) {
      llm.dispose();
      throw error;
    }
  }

  /**
   * Encodes prompts as the caption server does (positive prompts already carry pos_magic; the
   * negative prompt is just another row). The caller owns `y` and `clip`.
   */
  async encodePrompts(prompts: readonly string[], options: { signal?: AbortSignal } = {}): Promise<EncodedPrompts> {
    const { signal } = options;
    if (!Array.isArray(prompts) || prompts.length === 0 || prompts.some((p) => typeof p !== 'string')) {
      throw new StepVideoError('ERR_ARGUMENT', 'encodePrompts needs a non-empty array of strings', { got: Array.isArray(prompts) ? prompts.map((p) => typeof p) : typeof prompts });
    }
    throwIfAborted(signal, 'encodePrompts');
    const batch = prompts.length;
    const llmTokens = this.stepTokenizer.encode(prompts, LLM_TOKENS);
    const clipTokens = this.clipTokenizer.encode(prompts, CLIP_TOKENS);
    const forwardOptions = signal ? { signal } : {};

    const y = await this.llm.forward(Int32Array.from(llmTokens.inputIds.flat()), [batch, LLM_TOKENS], forwardOptions);
    let clip: Tensor | undefined;
    let yOut: Tensor | undefined;
    try {
      clip = await this.clip.forward(Int32Array.from(clipTokens.inputIds.flat()), Int32Array.from(clipTokens.attentionMask.flat()), [batch, CLIP_TOKENS], forwardOptions);
      yOut = this.#toOutput(y);
      const clipOut = this.#toOutput(clip);
      return { y: yOut, yMask: this.#mask(llmTokens.attentionMask), clip: clipOut };
    } catch (error) {
      for (const t of [y, yOut, clip]) t?.dispose();
      throw error;
    }
  }

  /** The DiT's [B, 397] mask: 77 ones (every CLIP position, BERT's pads included), then the Step-LLM mask. */
  #mask(llmMask: readonly (readonly number[])[]): Int32Array {
    const width = CLIP_TOKENS + LLM_TOKENS;
    const mask = new Int32Array(llmMask.length * width);
    llmMask.forEach((row, b) => {
      mask.fill(1, b * width, b * width + CLIP_TOKENS);
      mask.set(row, b * width + CLIP_TOKENS);
    });
    return mask;
  }

  dispose(): void {
    this.llm.dispose();
    this.clip.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Takes ownership of `t`; returns it in the output dtype. */
  #toOutput(t: Tensor): Tensor {
    if (t.dtype === this.outputDType) return t;
    using source = t;
    return cast(source, this.outputDType);
  }
}
