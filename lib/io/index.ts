// One entry point for model weights: safetensors (a file, a sharded index, or a folder) or a
// torch.save zip, told apart by their bytes, all returned as the same WeightIndex of byte ranges.
import { type FileHandle, open, readdir } from 'node:fs/promises';
import path from 'node:path';
import { StepVideoError, asStepVideoError } from '../errors.js';
import {
  MAX_HEADER_BYTES,
  findSafetensorsCheckpoint,
  indexFromHeader,
  isDirectory,
  openSafetensorsIndex,
  readSafetensorsHeader,
} from './safetensors.js';
import { type TensorRecord, TensorIndex, type WeightIndex, makeRecord } from './tensor-record.js';
import { type PickleLimits, readTorchCheckpoint } from './torch-pickle.js';

export { openCheckpoint, openSafetensorsIndex, readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensors.js';
export type { HostTensor, OpenCheckpointOptions, SafetensorsHeader, TensorData } from './safetensors.js';
export { readTorchCheckpoint, unpickleStateDict } from './torch-pickle.js';
export type { PickleLimits } from './torch-pickle.js';
export { STORAGE_DTYPES, STORAGE_DTYPE_SIZE, TensorIndex, toDType, toStorageDType } from './tensor-record.js';
export { numel } from '../shape.js';
export type { StorageDType, TensorRecord, WeightFormat, WeightIndex } from './tensor-record.js';

export type WeightsFileKind = 'safetensors' | 'safetensors-index' | 'torch';

export interface OpenWeightsOptions {
  /** In a folder, which checkpoint to open by base name: 'model', 'diffusion_pytorch_model', 'pytorch_model'. */
  basename?: string;
  /** Bounds for the torch pickle reader. */
  limits?: Partial<PickleLimits>;
}

const TORCH_EXTENSIONS = ['.bin', '.pt', '.pth'];

/**
 * Opens model weights: a .safetensors file, a *.safetensors.index.json, a torch.save zip
 * (pytorch_model.bin), or a folder holding one of them. In a folder safetensors win over torch
 * files; `basename` chooses when there are several.
 */
export async function openWeights(pathOrDir: string, options: OpenWeightsOptions = {}): Promise<WeightIndex> {
  const absolute = path.resolve(pathOrDir);
  const file = (await isDirectory(absolute)) ? await findWeightsInFolder(absolute, options.basename) : absolute;
  switch (await detectWeightsFile(file)) {
    case 'torch': {
      const tensors = await readTorchCheckpoint(file, { limits: options.limits });
      return new TensorIndex({ format: 'torch', source: file, records: tensors.values(), files: [file] });
    }
    case 'safetensors-index':
      return openSafetensorsIndex(file);
    case 'safetensors':
      return indexFromHeader(await readSafetensorsHeader(file));
  }
}

async function findWeightsInFolder(dir: string, basename: string | undefined): Promise<string> {
  const safetensors = await findSafetensorsCheckpoint(dir, basename);
  if (safetensors !== undefined) return safetensors;
  let names: string[];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((entry) => !entry.isDirectory()).map((entry) => entry.name);
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot list folder', { file: dir });
  }
  const candidates =
    basename !== undefined
      ? TORCH_EXTENSIONS.map((extension) => `${basename}${extension}`).filter((name) => names.includes(name))
      : names.filter((name) => TORCH_EXTENSIONS.some((extension) => name.endsWith(extension))).sort();
  if (candidates.length === 1) return path.join(dir, candidates[0]!);
  if (candidates.length > 1) {
    throw new StepVideoError('ERR_ARGUMENT', 'several checkpoints in folder, pass a basename to choose', { file: dir, got: candidates });
  }
  if (names.some((name) => name.endsWith('.bin.index.json'))) {
    throw new StepVideoError('ERR_UNSUPPORTED', 'sharded torch checkpoints are not supported, convert them to safetensors', { file: dir });
  }
  throw new StepVideoError('ERR_WEIGHTS_MISSING', 'no weights in folder', {
    file: dir,
    expected: `${basename ?? '*'}.safetensors, ${basename ?? '*'}.safetensors.index.json or ${basename ?? '*'}.bin/.pt/.pth`,
  });
}

/**
 * What kind of weights file this is, by its first bytes: a zip is a torch checkpoint, a valid
 * safetensors length prefix followed by '{' is safetensors, JSON text is an index. The extension
 * only breaks ties, so that a damaged .safetensors gets the safetensors reader's precise error.
 */
export async function detectWeightsFile(file: string): Promise<WeightsFileKind> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot open file', { file });
  }
  let head: Buffer;
  let size: number;
  try {
    size = (await handle.stat()).size;
    head = Buffer.alloc(Math.min(size, 16));
    await handle.read(head, 0, head.length, 0);
  } catch (error) {
    throw asStepVideoError(error, 'ERR_IO', 'cannot read file', { file });
  } finally {
    await handle.close();
  }

  // 'PK\x03\x04' (a local header) or 'PK\x05\x06' (an empty archive's end record).
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6))) {
    return 'torch';
  }
  // Before the pickle check: a header length such as 0x0180 also starts with 0x80.
  if (head.length >= 9 && head[8] === 0x7b) {
    const declared = head.readBigUInt64LE(0);
    if (declared <= BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) return 'safetensors';
  }
  if (head.length >= 2 && head[0] === 0x80 && head[1]! <= 5) {
    throw new StepVideoError('ERR_UNSUPPORTED', 'legacy (pre-zip) torch.save file: re-save it with torch >= 1.6 or convert it', {
      file,
    });
  }
  if (file.endsWith('.safetensors')) return 'safetensors';
  const text = head.toString('latin1').replace(/^\xef\xbb\xbf/, '').trimStart();
  if (text.startsWith('{') || file.endsWith('.json')) return 'safetensors-index';
  throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'not a recognised weights file', {
    file,
    expected: 'safetensors, a safetensors index, or a torch.save zip',
  });
}

/**
 * A view of `index` with tensors renamed: `rename` returns the new name, or undefined to leave the
 * tensor out. Two tensors ending up with one name is an error (ERR_WEIGHTS_FORMAT).
 */
export function renameKeys(index: WeightIndex, rename: (name: string) => string | undefined): WeightIndex {
  const renamed = new Map<string, { from: string; record: TensorRecord }>();
  for (const record of index) {
    const target = rename(record.name);
    if (target === undefined) continue;
    const clash = renamed.get(target);
    if (clash !== undefined) {
      throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'renaming maps two tensors to one name', {
        file: index.source,
        tensor: target,
        got: [clash.from, record.name],
      });
    }
    renamed.set(target, { from: record.name, record: makeRecord({ ...record, name: target }) });
  }
  return new TensorIndex({
    format: index.format,
    source: index.source,
    records: [...renamed.values()].map(({ record }) => record),
    files: index.files,
    metadata: index.metadata,
  });
}

export interface StripPrefixOptions {
  /** 'all' (default) keeps names without the prefix as they are; 'prefixed' drops them. */
  keep?: 'all' | 'prefixed';
}

/** A view of `index` with `prefix` removed from the names that carry it ('bert.' for the CLIP encoder). */
export function stripPrefix(index: WeightIndex, prefix: string, options: StripPrefixOptions = {}): WeightIndex {
  const keepOthers = (options.keep ?? 'all') === 'all';
  return renameKeys(index, (name) => {
    if (!name.startsWith(prefix)) return keepOthers ? name : undefined;
    const stripped = name.slice(prefix.length);
    if (stripped === '') {
      throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'tensor name is only the prefix', { file: index.source, tensor: name });
    }
    return stripped;
  });
}
