// torch.save checkpoints: a zip with `<prefix>/data.pkl` (the object graph, pickled) and one stored
// entry per storage at `<prefix>/data/<key>`. This is a restricted unpickler: it understands the
// handful of opcodes and globals a state dict needs, builds plain data, and refuses everything else.
// No code from the file is ever run; tensors come out as byte ranges inside the storage entries.
import { StepVideoError } from '../errors.js';
import { checkedNumel } from '../shape.js';
import {
  STORAGE_DTYPE_SIZE,
  type StorageDType,
  type TensorRecord,
  makeRecord,
} from './tensor-record.js';
import { ZIP_STORED, ZipArchive, type ZipEntry } from './zip.js';

export interface PickleLimits {
  /** Largest data.pkl accepted (a state dict pickle is about 100 bytes per tensor). */
  maxBytes: number;
  /** Most values on the unpickler stack at once. */
  maxStack: number;
  /** Most open MARKs at once: how deeply containers may nest while being built. */
  maxNesting: number;
  /** Most memo entries. */
  maxMemo: number;
}

export const DEFAULT_PICKLE_LIMITS: Readonly<PickleLimits> = {
  maxBytes: 64 * 1024 * 1024,
  maxStack: 100_000,
  maxNesting: 256,
  maxMemo: 1_000_000,
};

/** Storage classes named in persistent ids, and the element type of their bytes. */
const STORAGE_CLASSES: Readonly<Record<string, StorageDType>> = {
  'torch.FloatStorage': 'F32',
  'torch.BFloat16Storage': 'BF16',
  'torch.HalfStorage': 'F16',
  'torch.DoubleStorage': 'F64',
  'torch.LongStorage': 'I64',
  'torch.IntStorage': 'I32',
  'torch.ShortStorage': 'I16',
  'torch.CharStorage': 'I8',
  'torch.ByteStorage': 'U8',
  'torch.BoolStorage': 'BOOL',
  // Untyped storages hold bytes; torch loads them as uint8.
  'torch.storage.UntypedStorage': 'U8',
};

const CALLABLES = new Set(['collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_parameter']);

// ---- the values a restricted pickle can build ----

type PyKey = string | number | bigint | boolean | null;
interface PyFloat {
  kind: 'float';
  value: number;
}
interface PyTuple {
  kind: 'tuple';
  items: readonly PyValue[];
}
interface PyList {
  kind: 'list';
  items: PyValue[];
}
interface PyDict {
  kind: 'dict';
  entries: Map<PyKey, PyValue>;
}
interface PyGlobal {
  kind: 'global';
  name: string;
}
interface PyStorage {
  kind: 'storage';
  key: string;
  dtype: StorageDType;
  numel: number;
  entry: ZipEntry;
}
interface PyTensor {
  kind: 'tensor';
  storage: PyStorage;
  storageOffset: number;
  shape: number[];
  stride: number[];
}
type PyObject = PyFloat | PyTuple | PyList | PyDict | PyGlobal | PyStorage | PyTensor;
type PyValue = PyKey | PyObject;

function typeName(value: PyValue): string {
  if (value === null) return 'None';
  switch (typeof value) {
    case 'string':
      return 'str';
    case 'boolean':
      return 'bool';
    case 'number':
    case 'bigint':
      return 'int';
    default:
      return value.kind === 'global' ? `global '${value.name}'` : value.kind;
  }
}

function isKind<K extends PyObject['kind']>(value: PyValue, kind: K): value is Extract<PyObject, { kind: K }> {
  return typeof value === 'object' && value !== null && value.kind === kind;
}

/** A non-negative integer small enough to index bytes (booleans are ints in Python, not here). */
function asCount(value: PyValue | undefined): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

// ---- opcodes ----

const OP = {
  MARK: 0x28,
  STOP: 0x2e,
  EMPTY_TUPLE: 0x29,
  BINFLOAT: 0x47,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  NONE: 0x4e,
  BINPERSID: 0x51,
  REDUCE: 0x52,
  BINUNICODE: 0x58,
  EMPTY_LIST: 0x5d,
  APPEND: 0x61,
  BUILD: 0x62,
  GLOBAL: 0x63,
  APPENDS: 0x65,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  SETITEM: 0x73,
  TUPLE: 0x74,
  SETITEMS: 0x75,
  EMPTY_DICT: 0x7d,
  PROTO: 0x80,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  LONG1: 0x8a,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  STACK_GLOBAL: 0x93,
  MEMOIZE: 0x94,
  FRAME: 0x95,
} as const;

/** Names of the pickle opcodes this reader refuses, so that the error says what it met. */
const REFUSED_OPCODES: Readonly<Record<number, string>> = {
  0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4c: 'LONG', 0x50: 'PERSID',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x64: 'DICT', 0x67: 'GET',
  0x69: 'INST', 0x6c: 'LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2',
  0x84: 'EXT4', 0x8b: 'LONG4', 0x42: 'BINBYTES', 0x43: 'SHORT_BINBYTES', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
};

/** Where the unpickler finds storages: the archive's `<prefix>/data/<key>` entries. */
export interface StorageSource {
  /** The checkpoint file, for messages and for the records. */
  readonly file: string;
  storage(key: string): ZipEntry | undefined;
}

class Unpickler {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #source: StorageSource;
  readonly #limits: PickleLimits;
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });
  #pos = 0;
  readonly #stack: PyValue[] = [];
  readonly #marks: number[] = [];
  readonly #memo = new Map<number, PyValue>();
  readonly #storages = new Map<string, PyStorage>();

  constructor(bytes: Uint8Array, source: StorageSource, limits: PickleLimits) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#source = source;
    this.#limits = limits;
  }

  #error(what: string, details: { expected?: unknown; got?: unknown } = {}): StepVideoError {
    return new StepVideoError('ERR_WEIGHTS_FORMAT', what, { file: this.#source.file, ...details });
  }

  // -- reading the byte stream --

  #take(length: number): number {
    if (length > this.#bytes.length - this.#pos) throw this.#error(`pickle ends early at byte ${this.#pos}`);
    const at = this.#pos;
    this.#pos += length;
    return at;
  }

  #u8(): number {
    return this.#bytes[this.#take(1)]!;
  }

  #u16(): number {
    return this.#view.getUint16(this.#take(2), true);
  }

  #u32(): number {
    return this.#view.getUint32(this.#take(4), true);
  }

  #u64(): number {
    const value = this.#view.getBigUint64(this.#take(8), true);
    // Any length past the end of the pickle is wrong; saturate so that #take refuses it.
    return value > BigInt(this.#bytes.length) ? Number.MAX_SAFE_INTEGER : Number(value);
  }

  #string(length: number): string {
    const at = this.#take(length);
    try {
      return this.#decoder.decode(this.#bytes.subarray(at, at + length));
    } catch {
      throw this.#error(`pickle string at byte ${at} is not valid UTF-8`);
    }
  }

  /** A GLOBAL operand: printable ASCII up to a newline. */
  #line(): string {
    const start = this.#pos;
    const end = this.#bytes.indexOf(0x0a, start);
    if (end < 0 || end - start > 1024) throw this.#error(`bad GLOBAL operand at byte ${start}`);
    this.#pos = end + 1;
    let text = '';
    for (let i = start; i < end; i++) {
      const c = this.#bytes[i]!;
      if (c < 0x20 || c > 0x7e) throw this.#error(`bad GLOBAL operand at byte ${start}`);
      text += String.fromCharCode(c);
    }
    return text;
  }

  #long(length: number): number | bigint {
    const at = this.#take(length);
    let value = 0n;
    for (let i = length - 1; i >= 0; i--) value = (value << 8n) | BigInt(this.#bytes[at + i]!);
    if (length > 0 && (this.#bytes[at + length - 1]! & 0x80) !== 0) value -= 1n << BigInt(8 * length);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }

  // -- the stack --

  #push(value: PyValue): void {
    if (this.#stack.length >= this.#limits.maxStack) {
      throw this.#error(`pickle stack deeper than ${this.#limits.maxStack} values`);
    }
    this.#stack.push(value);
  }

  /** Pops one value; values below the innermost MARK belong to an outer container. */
  #pop(): PyValue {
    if (this.#stack.length <= (this.#marks.at(-1) ?? 0)) throw this.#error(`pickle stack underflow at byte ${this.#pos - 1}`);
    return this.#stack.pop()!;
  }

  #top(): PyValue {
    if (this.#stack.length <= (this.#marks.at(-1) ?? 0)) throw this.#error(`pickle stack underflow at byte ${this.#pos - 1}`);
    return this.#stack[this.#stack.length - 1]!;
  }

  #popMark(): PyValue[] {
    const mark = this.#marks.pop();
    if (mark === undefined) throw this.#error(`pickle pops a MARK that was never set, at byte ${this.#pos - 1}`);
    return this.#stack.splice(mark);
  }

  #memoize(index: number): void {
    if (!this.#memo.has(index) && this.#memo.size >= this.#limits.maxMemo) {
      throw this.#error(`pickle memo larger than ${this.#limits.maxMemo} entries`);
    }
    this.#memo.set(index, this.#top());
  }

  #recall(index: number): PyValue {
    const value = this.#memo.get(index);
    if (value === undefined) throw this.#error(`pickle memo has no entry ${index}`);
    return value;
  }

  #dictTarget(op: string): PyDict {
    const target = this.#top();
    if (!isKind(target, 'dict')) throw this.#error(`pickle ${op} on a ${typeName(target)}`, { expected: 'dict' });
    return target;
  }

  #setItem(dict: PyDict, key: PyValue, value: PyValue): void {
    if (typeof key === 'object' && key !== null) throw this.#error('pickle dict key of unsupported type', { got: typeName(key) });
    dict.entries.set(key, value);
  }

  #global(module: string, name: string): PyGlobal {
    const qualified = `${module}.${name}`;
    if (!CALLABLES.has(qualified) && !Object.hasOwn(STORAGE_CLASSES, qualified)) {
      throw this.#error(`refusing pickle global '${qualified}'`);
    }
    return { kind: 'global', name: qualified };
  }

  /** Runs the pickle to its STOP and returns the value it built. */
  run(): PyValue {
    if (this.#bytes.length > this.#limits.maxBytes) {
      throw this.#error('pickle too large', { expected: `at most ${this.#limits.maxBytes} bytes`, got: `${this.#bytes.length} bytes` });
    }
    for (;;) {
      if (this.#pos >= this.#bytes.length) throw this.#error('pickle ends without STOP');
      const at = this.#pos;
      const op = this.#u8();
      switch (op) {
        case OP.PROTO: {
          const version = this.#u8();
          if (version < 2 || version > 5) throw this.#error('unsupported pickle protocol', { expected: '2 to 5', got: version });
          break;
        }
        case OP.FRAME: {
          // Framing only groups opcodes for buffered reading: check the length and read on.
          const length = this.#u64();
          if (length > this.#bytes.length - this.#pos) throw this.#error(`pickle frame at byte ${at} runs past the end`);
          break;
        }
        case OP.STOP:
          return this.#pop();
        case OP.MARK:
          if (this.#marks.length >= this.#limits.maxNesting) {
            throw this.#error(`pickle nests deeper than ${this.#limits.maxNesting} levels`);
          }
          this.#marks.push(this.#stack.length);
          break;
        case OP.EMPTY_DICT:
          this.#push({ kind: 'dict', entries: new Map() });
          break;
        case OP.EMPTY_LIST:
          this.#push({ kind: 'list', items: [] });
          break;
        case OP.EMPTY_TUPLE:
          this.#push({ kind: 'tuple', items: [] });
          break;
        case OP.TUPLE:
          this.#push({ kind: 'tuple', items: this.#popMark() });
          break;
        case OP.TUPLE1:
        case OP.TUPLE2:
        case OP.TUPLE3: {
          const items: PyValue[] = [];
          for (let n = op - OP.TUPLE1 + 1; n > 0; n--) items.unshift(this.#pop());
          this.#push({ kind: 'tuple', items });
          break;
        }
        case OP.SETITEM: {
          const value = this.#pop();
          const key = this.#pop();
          this.#setItem(this.#dictTarget('SETITEM'), key, value);
          break;
        }
        case OP.SETITEMS: {
          const items = this.#popMark();
          const dict = this.#dictTarget('SETITEMS');
          if (items.length % 2 !== 0) throw this.#error('pickle SETITEMS with an odd number of values');
          for (let i = 0; i < items.length; i += 2) this.#setItem(dict, items[i]!, items[i + 1]!);
          break;
        }
        case OP.APPEND: {
          const value = this.#pop();
          const list = this.#top();
          if (!isKind(list, 'list')) throw this.#error(`pickle APPEND on a ${typeName(list)}`, { expected: 'list' });
          list.items.push(value);
          break;
        }
        case OP.APPENDS: {
          const items = this.#popMark();
          const list = this.#top();
          if (!isKind(list, 'list')) throw this.#error(`pickle APPENDS on a ${typeName(list)}`, { expected: 'list' });
          for (const item of items) list.items.push(item);
          break;
        }
        case OP.BININT:
          this.#push(this.#view.getInt32(this.#take(4), true));
          break;
        case OP.BININT1:
          this.#push(this.#u8());
          break;
        case OP.BININT2:
          this.#push(this.#u16());
          break;
        case OP.LONG1:
          this.#push(this.#long(this.#u8()));
          break;
        case OP.BINUNICODE:
          this.#push(this.#string(this.#u32()));
          break;
        case OP.SHORT_BINUNICODE:
          this.#push(this.#string(this.#u8()));
          break;
        case OP.BINUNICODE8:
          this.#push(this.#string(this.#u64()));
          break;
        case OP.BINFLOAT:
          this.#push({ kind: 'float', value: this.#view.getFloat64(this.#take(8), false) });
          break;
        case OP.NEWTRUE:
          this.#push(true);
          break;
        case OP.NEWFALSE:
          this.#push(false);
          break;
        case OP.NONE:
          this.#push(null);
          break;
        case OP.BINPUT:
          this.#memoize(this.#u8());
          break;
        case OP.LONG_BINPUT:
          this.#memoize(this.#u32());
          break;
        case OP.MEMOIZE:
          this.#memoize(this.#memo.size);
          break;
        case OP.BINGET:
          this.#push(this.#recall(this.#u8()));
          break;
        case OP.LONG_BINGET:
          this.#push(this.#recall(this.#u32()));
          break;
        case OP.GLOBAL: {
          const module = this.#line();
          this.#push(this.#global(module, this.#line()));
          break;
        }
        case OP.STACK_GLOBAL: {
          const name = this.#pop();
          const module = this.#pop();
          if (typeof module !== 'string' || typeof name !== 'string') {
            throw this.#error('pickle STACK_GLOBAL operands are not strings', { got: [typeName(module), typeName(name)] });
          }
          this.#push(this.#global(module, name));
          break;
        }
        case OP.REDUCE: {
          const args = this.#pop();
          const callable = this.#pop();
          this.#push(this.#call(callable, args));
          break;
        }
        case OP.BUILD: {
          // OrderedDict state (e.g. a state dict's `_metadata` attribute) sets attributes, never items: drop it.
          const state = this.#pop();
          const target = this.#top();
          if (!isKind(target, 'dict') || !isKind(state, 'dict')) {
            throw this.#error('pickle BUILD is only supported on a dict with dict state', {
              got: `${typeName(target)} with ${typeName(state)} state`,
            });
          }
          break;
        }
        case OP.BINPERSID:
          this.#push(this.#persistentLoad(this.#pop()));
          break;
        default: {
          const name = REFUSED_OPCODES[op];
          const hex = `0x${op.toString(16).padStart(2, '0')}`;
          throw this.#error(
            name !== undefined ? `unsupported pickle opcode ${name} (${hex}) at byte ${at}` : `unknown pickle opcode ${hex} at byte ${at}`,
          );
        }
      }
    }
  }

  #call(callable: PyValue, args: PyValue): PyValue {
    if (!isKind(callable, 'global') || !CALLABLES.has(callable.name)) {
      throw this.#error(`pickle REDUCE on ${typeName(callable)}, which is not callable here`);
    }
    if (!isKind(args, 'tuple')) throw this.#error(`pickle REDUCE arguments for '${callable.name}' are not a tuple`);
    const items = args.items;
    switch (callable.name) {
      case 'collections.OrderedDict':
        if (items.length !== 0) throw this.#error('OrderedDict() with arguments is not supported', { got: `${items.length} arguments` });
        return { kind: 'dict', entries: new Map() };
      case 'torch._utils._rebuild_parameter': {
        // (data, requires_grad, backward_hooks): a Parameter is just its tensor here.
        const data = items[0];
        if (items.length !== 3 || data === undefined || !isKind(data, 'tensor')) {
          throw this.#error('bad _rebuild_parameter arguments', { expected: '(tensor, requires_grad, backward_hooks)' });
        }
        return data;
      }
      default:
        return this.#rebuildTensor(items);
    }
  }

  /** _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
  #rebuildTensor(items: readonly PyValue[]): PyTensor {
    const [storage, offset, size, stride, requiresGrad, hooks] = items;
    const storageOffset = asCount(offset);
    const shape = isKind(size ?? null, 'tuple') ? (size as PyTuple).items.map(asCount) : undefined;
    const strides = isKind(stride ?? null, 'tuple') ? (stride as PyTuple).items.map(asCount) : undefined;
    if (
      (items.length !== 6 && items.length !== 7) ||
      storage === undefined ||
      !isKind(storage, 'storage') ||
      storageOffset === undefined ||
      shape === undefined ||
      strides === undefined ||
      shape.includes(undefined) ||
      strides.includes(undefined) ||
      shape.length !== strides.length ||
      typeof requiresGrad !== 'boolean' ||
      hooks === undefined ||
      !isKind(hooks, 'dict')
    ) {
      throw this.#error('bad _rebuild_tensor_v2 arguments', {
        expected: '(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])',
        got: `(${items.map(typeName).join(', ')})`,
      });
    }
    return { kind: 'tensor', storage, storageOffset, shape: shape as number[], stride: strides as number[] };
  }

  /** Persistent id ('storage', storage_type, key, location, numel): a storage entry of the archive. */
  #persistentLoad(pid: PyValue): PyStorage {
    const items = isKind(pid, 'tuple') ? pid.items : [];
    const [tag, type, key, location, count] = items;
    const numel = asCount(count);
    if (
      items.length !== 5 ||
      tag !== 'storage' ||
      type === undefined ||
      !isKind(type, 'global') ||
      !Object.hasOwn(STORAGE_CLASSES, type.name) ||
      typeof key !== 'string' ||
      typeof location !== 'string' ||
      numel === undefined
    ) {
      throw this.#error('bad persistent id', {
        expected: "('storage', storage_type, key, location, numel)",
        got: isKind(pid, 'tuple') ? `(${items.map(typeName).join(', ')})` : typeName(pid),
      });
    }
    const dtype = STORAGE_CLASSES[type.name]!;
    const seen = this.#storages.get(key);
    if (seen !== undefined) {
      if (seen.dtype !== dtype || seen.numel !== numel) {
        throw this.#error(`storage '${key}' is named with two different types`, {
          expected: `${seen.dtype} x ${seen.numel}`,
          got: `${dtype} x ${numel}`,
        });
      }
      return seen;
    }
    const entry = this.#source.storage(key);
    if (entry === undefined) throw this.#error(`storage '${key}' is missing from the archive`);
    const byteLength = numel * STORAGE_DTYPE_SIZE[dtype];
    if (entry.uncompressedSize !== byteLength) {
      throw this.#error(`storage '${key}' has the wrong size`, {
        expected: `${byteLength} bytes (${numel} x ${dtype})`,
        got: `${entry.uncompressedSize} bytes`,
      });
    }
    const storage: PyStorage = { kind: 'storage', key, dtype, numel, entry };
    this.#storages.set(key, storage);
    return storage;
  }
}

/** The record of one named tensor: contiguous, inside a stored storage entry. */
function tensorRecord(name: string, tensor: PyTensor, file: string): TensorRecord {
  const { storage, storageOffset, shape, stride } = tensor;
  const count = checkedNumel(shape);
  if (count === undefined) throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'tensor size overflows', { file, tensor: name, got: shape });
  if (count > 0) {
    // Row-major strides; a dimension of size 1 may carry any stride (torch counts it contiguous too).
    let expected = 1;
    for (let i = shape.length - 1; i >= 0; i--) {
      if (shape[i] !== 1 && stride[i] !== expected) {
        throw new StepVideoError('ERR_UNSUPPORTED', 'non-contiguous tensor in torch checkpoint', {
          file,
          tensor: name,
          expected: `row-major strides for size [${shape.join(', ')}]`,
          got: [...stride],
        });
      }
      expected *= shape[i]!;
    }
  }
  if (storageOffset + count > storage.numel) {
    throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'tensor extends past its storage', {
      file,
      tensor: name,
      expected: `at most ${storage.numel} elements`,
      got: `${count} elements at offset ${storageOffset}`,
    });
  }
  if (storage.entry.method !== ZIP_STORED) {
    throw new StepVideoError('ERR_UNSUPPORTED', 'tensor storage is compressed in the archive, cannot be read in place', {
      file,
      tensor: name,
      got: `zip method ${storage.entry.method} for '${storage.entry.name}'`,
    });
  }
  const size = STORAGE_DTYPE_SIZE[storage.dtype];
  return makeRecord({
    name,
    dtype: storage.dtype,
    shape: [...shape],
    file,
    offset: storage.entry.dataOffset + storageOffset * size,
    byteLength: count * size,
  });
}

/**
 * Runs a torch.save pickle under the restrictions above and returns its tensors by name. The
 * pickle must build a dict of name -> tensor (or {'state_dict': that dict, ...}).
 */
export function unpickleStateDict(
  pickle: Uint8Array,
  source: StorageSource,
  limits: Partial<PickleLimits> = {},
): Map<string, TensorRecord> {
  const root = new Unpickler(pickle, source, { ...DEFAULT_PICKLE_LIMITS, ...limits }).run();
  const file = source.file;
  if (!isKind(root, 'dict')) {
    throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'torch checkpoint is not a state dict', { file, expected: 'dict', got: typeName(root) });
  }
  const wrapped = root.entries.get('state_dict');
  const dict = wrapped !== undefined && isKind(wrapped, 'dict') ? wrapped : root;
  const result = new Map<string, TensorRecord>();
  for (const [key, value] of dict.entries) {
    if (typeof key !== 'string') {
      throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'state dict key is not a string', { file, got: typeName(key) });
    }
    if (!isKind(value, 'tensor')) {
      throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'state dict value is not a tensor', { file, tensor: key, got: typeName(value) });
    }
    result.set(key, tensorRecord(key, value, file));
  }
  return result;
}

export interface TorchCheckpointOptions {
  limits?: Partial<PickleLimits>;
}

/** Reads a torch.save zip checkpoint holding a state dict; tensors come back as byte ranges in `file`. */
export async function readTorchCheckpoint(file: string, options: TorchCheckpointOptions = {}): Promise<Map<string, TensorRecord>> {
  const limits = { ...DEFAULT_PICKLE_LIMITS, ...options.limits };
  const archive = await ZipArchive.open(file);
  try {
    const pickles = [...archive.entries.keys()].filter((name) => /^[^/]+\/data\.pkl$/.test(name));
    if (pickles.length !== 1) {
      throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'not a torch.save checkpoint', {
        file: archive.file,
        expected: 'one <prefix>/data.pkl entry',
        got: pickles.length === 0 ? 'none' : pickles,
      });
    }
    const prefix = pickles[0]!.slice(0, -'/data.pkl'.length);

    const byteorder = archive.get(`${prefix}/byteorder`);
    if (byteorder !== undefined) {
      const order = (await archive.read(byteorder, 16)).toString('latin1');
      if (order === 'big') {
        throw new StepVideoError('ERR_UNSUPPORTED', 'big-endian torch checkpoint', { file: archive.file, expected: 'little', got: order });
      }
      if (order !== 'little') {
        throw new StepVideoError('ERR_WEIGHTS_FORMAT', 'bad byteorder entry', { file: archive.file, expected: 'little', got: order });
      }
    }

    const pickle = await archive.read(archive.get(pickles[0]!)!, limits.maxBytes);
    return unpickleStateDict(pickle, { file: archive.file, storage: (key) => archive.get(`${prefix}/data/${key}`) }, limits);
  } finally {
    await archive.close();
  }
}
