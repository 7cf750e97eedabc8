// The built-in test model: the released Step-Video-T2V architecture at a tiny size, with
// deterministic weights made in code, written once into a cache folder in the released layout
//   transformer/  config.json, diffusion_pytorch_model-0000{1,2}-of-00002.safetensors + index
//   step_llm/     config.json, model-0000{1,2}-of-00002.safetensors + index, step1_chat_tokenizer.model
//   hunyuan_clip/ clip_text_encoder/{config.json, model.safetensors}, tokenizer/{vocab.txt, ...}
//   vae/          config.json (the tiny widths), vae_v2.safetensors (with the released conv_out naming)
// and then loaded through exactly the loaders the released weights go through. It lets
// `stepvideo generate` run end to end (both tokenizers and encoders, sampler, VAE, MP4) with no
// download; its videos are structured noise, not pictures.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { f32ArrayToBf16 } from '../../dtype.js';
import { StepVideoError, asStepVideoError, isStepVideoError, throwIfAborted } from '../../errors.js';
import type { WeightSpec } from '../../io/load.js';
import { type TensorData, writeSafetensors } from '../../io/safetensors.js';
import { randomNormal } from '../../kernels/random.js';
import { clipWeightSpec, parseClipConfig } from '../../models/clip/config.js';
import { parseDiTConfig } from '../../models/dit/config.js';
import { ditWeightSpec } from '../../models/dit/weights.js';
import { ConfigJson } from '../../models/json-config.js';
import { parseStepLlmConfig, stepLlmWeightSpec } from '../../models/step-llm/config.js';
import type { VaeConfig } from '../../models/vae/config.js';
import { vaeWeightSpec } from '../../models/vae/weights.js';
import * as ops from '../../ops.js';
import { CLIP_TOKENS, LLM_TOKENS } from '../../tokenizers/caption-lengths.js';
import { buildStepSentencePieceModel } from './sentencepiece-model.js';
import { buildWordPieceVocab } from './wordpiece-vocab.js';

/** Bumped whenever what is generated changes, so an old cache folder is never reused. */
export const BUILTIN_MODEL_VERSION = 1;

/** The video size `stepvideo generate` uses with the built-in model when none is given. */
export const BUILTIN_DEFAULT_VIDEO = Object.freeze({ frames: 34, height: 128, width: 128 });

const LLM_HIDDEN = 128;
const CLIP_HIDDEN = 64;
const Z_CHANNELS = 8;
const SEED = 20250217n;

const DIT_CONFIG = {
  _class_name: 'StepVideoModel',
  num_attention_heads: 1,
  attention_head_dim: 128,
  in_channels: Z_CHANNELS,
  out_channels: Z_CHANNELS,
  num_layers: 2,
  dropout: 0,
  patch_size: 1,
  norm_type: 'ada_norm_single',
  norm_elementwise_affine: false,
  norm_eps: 1e-6,
  use_additional_conditions: false,
  caption_channels: [LLM_HIDDEN, CLIP_HIDDEN],
  attention_type: 'parallel',
};

const VAE_CONFIG_JSON = {
  version: 2,
  z_channels: Z_CHANNELS,
  encoder: { ch: 32, ch_mult: [1, 1, 2, 2] },
  decoder: { ch: 32, ch_mult: [1, 1, 2, 2] },
};
const VAE_CONFIG: VaeConfig = {
  zChannels: Z_CHANNELS,
  encoder: { ch: 32, chMult: [1, 1, 2, 2], blocksPerLevel: 2 },
  decoder: { ch: 32, chMult: [1, 1, 2, 2], blocksPerLevel: 3 },
};

function llmConfig(vocabSize: number): Record<string, unknown> {
  return {
    architectures: ['Step1Model'],
    hidden_size: LLM_HIDDEN,
    num_attention_heads: 2,
    num_attention_groups: 1,
    num_layers: 2,
    ffn_hidden_size: 256,
    layernorm_epsilon: 1e-5,
    padded_vocab_size: Math.ceil(vocabSize / 64) * 64,
    seq_length: LLM_TOKENS,
    use_flash_attn: true,
    attention_dropout: 0,
    hidden_dropout: 0,
    params_dtype: 'bfloat16',
    fp32_residual_connection: false,
    embedding_weights_in_fp32: false,
  };
}

function clipConfig(vocabSize: number): Record<string, unknown> {
  return {
    architectures: ['BertModel'],
    model_type: 'bert',
    vocab_size: vocabSize,
    hidden_size: CLIP_HIDDEN,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 128,
    hidden_act: 'gelu',
    hidden_dropout_prob: 0.1,
    attention_probs_dropout_prob: 0.1,
    max_position_embeddings: CLIP_TOKENS,
    type_vocab_size: 2,
    initializer_range: 0.02,
    layer_norm_eps: 1e-12,
    pad_token_id: 0,
  };
}

/** Everything the folder is made from; its hash names the cache folder. */
function describeModel() {
  const sentencePiece = buildStepSentencePieceModel();
  const vocab = buildWordPieceVocab();
  return {
    version: BUILTIN_MODEL_VERSION,
    seed: SEED.toString(),
    dit: DIT_CONFIG,
    vae: VAE_CONFIG_JSON,
    llm: llmConfig(sentencePiece.vocabSize),
    clip: clipConfig(vocab.length),
    sentencePiece,
    vocab,
  };
}

/** Where built-in models are cached: STEPVIDEO_CACHE_DIR, else $XDG_CACHE_HOME/stepvideo, else ~/.cache/stepvideo (os.tmpdir() without a home, or when the home cannot be written). */
export function defaultCacheDir(): string {
  if (process.env.STEPVIDEO_CACHE_DIR) return path.resolve(process.env.STEPVIDEO_CACHE_DIR);
  if (process.env.XDG_CACHE_HOME) return path.join(process.env.XDG_CACHE_HOME, 'stepvideo');
  const home = os.homedir();
  return home ? path.join(home, '.cache', 'stepvideo') : path.join(os.tmpdir(), 'stepvideo-cache');
}

export interface BuiltinModelOptions {
  /** Parent folder of the model folder (default defaultCacheDir()). */
  cacheDir?: string;
  signal?: AbortSignal;
  /** Called when the folder has to be made (once per cache folder and model version). */
  onCreate?: (dir: string) => void;
}

/**
 * The built-in model's folder, made on first use. The folder is assembled under a temporary name
 * and renamed into place, so a folder under the final name is always complete; concurrent makers
 * (two processes, two tests) each build their own and the first rename wins.
 */
export async function ensureBuiltinModel(options: BuiltinModelOptions = {}): Promise<string> {
  if (options.cacheDir !== undefined || process.env.STEPVIDEO_CACHE_DIR) return ensureIn(path.resolve(options.cacheDir ?? defaultCacheDir()), options);
  try {
    return await ensureIn(defaultCacheDir(), options);
  } catch (error) {
    // A read-only home (containers, CI) should not stop the test model: the OS temp dir will do.
    if (isStepVideoError(error, 'ERR_ABORTED')) throw error;
    return ensureIn(path.join(os.tmpdir(), 'stepvideo-cache'), options);
  }
}

async function ensureIn(parent: string, options: BuiltinModelOptions): Promise<string> {
  const description = describeModel();
  const hash = createHash('sha256').update(JSON.stringify(description, (_key, value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString('base64') : value))).digest('hex').slice(0, 12);
  const dir = path.join(parent, `builtin-v${BUILTIN_MODEL_VERSION}-${hash}`);
  if (existsSync(path.join(dir, 'builtin.json'))) return dir;

  options.onCreate?.(dir);
  const temporary = path.join(parent, `.${path.basename(dir)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(temporary, { recursive: true });
    await writeModelFolder(temporary, description, options.signal);
    await writeFile(path.join(temporary, 'builtin.json'), `${JSON.stringify({ name: 'stepvideo built-in test model', version: BUILTIN_MODEL_VERSION, hash, note: 'tiny Step-Video-T2V architecture with deterministic random weights; not a trained model' }, null, 1)}\n`);
    try {
      await rename(temporary, dir);
    } catch (error) {
      // Another maker finished first: its folder is as good as ours.
      if (!existsSync(path.join(dir, 'builtin.json'))) throw error;
      await rm(temporary, { recursive: true, force: true });
    }
    return dir;
  } catch (error) {
    await rm(temporary, { recursive: true, force: true }).catch(() => undefined);
    throw asStepVideoError(error, 'ERR_IO', 'cannot create the built-in model', { file: dir });
  }
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(value, null, 1)}\n`);
}

async function writeModelFolder(root: string, model: ReturnType<typeof describeModel>, signal: AbortSignal | undefined): Promise<void> {
  // Tokenizers.
  await mkdir(path.join(root, 'step_llm'), { recursive: true });
  await writeFile(path.join(root, 'step_llm', 'step1_chat_tokenizer.model'), model.sentencePiece.bytes);
  const tokenizerDir = path.join(root, 'hunyuan_clip', 'tokenizer');
  await mkdir(tokenizerDir, { recursive: true });
  await writeFile(path.join(tokenizerDir, 'vocab.txt'), `${model.vocab.join('\n')}\n`);
  await writeJson(path.join(tokenizerDir, 'tokenizer_config.json'), { do_lower_case: true, tokenize_chinese_chars: true, model_max_length: 512 });
  await writeJson(path.join(tokenizerDir, 'special_tokens_map.json'), { unk_token: '[UNK]', sep_token: '[SEP]', pad_token: '[PAD]', cls_token: '[CLS]', mask_token: '[MASK]' });

  // DiT: bf16 like the released shards, split in two with an index as released.
  await writeJson(path.join(root, 'transformer', 'config.json'), model.dit);
  const dit = await makeWeights('transformer', ditWeightSpec(parseDiTConfig(model.dit)), 'bf16', signal);
  await writeSharded(path.join(root, 'transformer'), 'diffusion_pytorch_model', dit);

  // Step-LLM: bf16, sharded.
  await writeJson(path.join(root, 'step_llm', 'config.json'), model.llm);
  const llm = await makeWeights('step_llm', stepLlmWeightSpec(parseStepLlmConfig(ConfigJson.from(model.llm))), 'bf16', signal);
  await writeSharded(path.join(root, 'step_llm'), 'model', llm);

  // Hunyuan-CLIP: f32 (released: an fp32 pytorch_model.bin), keys prefixed `bert.`.
  const clipDir = path.join(root, 'hunyuan_clip', 'clip_text_encoder');
  await writeJson(path.join(clipDir, 'config.json'), model.clip);
  const clip = await makeWeights('hunyuan_clip', clipWeightSpec(parseClipConfig(ConfigJson.from(model.clip))), 'f32', signal);
  await writeSafetensors(path.join(clipDir, 'model.safetensors'), new Map([...clip].map(([name, t]) => [`bert.${name}`, t])));

  // VAE v2, both towers, with the released file's one naming quirk (decoder.conv_out without `.conv`).
  await writeJson(path.join(root, 'vae', 'config.json'), model.vae);
  const vae = await makeWeights('vae', vaeWeightSpec(VAE_CONFIG, ['encoder', 'decoder']), 'bf16', signal);
  const released = new Map([...vae].map(([name, t]) => [name.replace(/^decoder\.conv_out\.conv\./, 'decoder.conv_out.'), t]));
  await writeSafetensors(path.join(root, 'vae', 'vae_v2.safetensors'), released);
}

/** Two shards and `<basename>.safetensors.index.json`, as the released transformer/ and step_llm/ folders. */
async function writeSharded(dir: string, basename: string, tensors: Map<string, TensorData>): Promise<void> {
  const names = [...tensors.keys()].sort();
  const half = Math.ceil(names.length / 2);
  const shards = [names.slice(0, half), names.slice(half)];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  for (let s = 0; s < shards.length; s++) {
    const file = `${basename}-0000${s + 1}-of-0000${shards.length}.safetensors`;
    const part = new Map(shards[s]!.map((name) => [name, tensors.get(name)!]));
    await writeSafetensors(path.join(dir, file), part);
    for (const [name, t] of part) {
      weightMap[name] = file;
      totalSize += t.data.byteLength;
    }
  }
  await writeJson(path.join(dir, `${basename}.safetensors.index.json`), { metadata: { total_size: totalSize }, weight_map: weightMap });
}

/** 32-bit FNV-1a: a stable per-tensor seed from its name. */
function nameHash(text: string): bigint {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return BigInt(h);
}

/**
 * Mean and standard deviation of a tensor's values, chosen so activations stay O(1): weight
 * matrices and convolutions N(0, 1/fan_in), norm weights near 1, embeddings N(0, 0.5²), biases and
 * modulation tables small.
 */
export function initFor(name: string, shape: readonly number[]): { mean: number; std: number } {
  const isNormWeight = /norm/i.test(name) && name.endsWith('.weight') && shape.length === 1;
  if (isNormWeight) return { mean: 1, std: 0.05 };
  if (/embeddings?\.|word_embeddings/.test(name)) return { mean: 0, std: 0.5 };
  if (name.endsWith('scale_shift_table')) return { mean: 0, std: 0.05 };
  if (shape.length >= 2) {
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    return { mean: 0, std: 1 / Math.sqrt(fanIn) };
  }
  return { mean: 0, std: 0.02 };
}

/**
 * Deterministic weights for `spec`: each tensor is its own Philox stream (seed from the model seed
 * and the tensor's name), drawn on the CPU backend's executor so the JS thread only converts.
 */
async function makeWeights(component: string, spec: WeightSpec, dtype: 'f32' | 'bf16', signal: AbortSignal | undefined): Promise<Map<string, TensorData>> {
  const out = new Map<string, TensorData>();
  for (const [name, shape] of spec) {
    throwIfAborted(signal, 'creating the built-in model');
    const { mean, std } = initFor(name, shape);
    const seed = (SEED << 32n) ^ nameHash(`${component}/${name}`);
    using normal = randomNormal(shape, { seed, device: 'cpu' });
    using values = ops.affine(normal, std, mean);
    const f32 = await values.toFloat32();
    if (f32.some((v) => !Number.isFinite(v))) throw new StepVideoError('ERR_INTERNAL', 'built-in weight is not finite', { tensor: name });
    out.set(name, { dtype, shape, data: dtype === 'bf16' ? f32ArrayToBf16(f32) : f32 });
  }
  return out;
}
