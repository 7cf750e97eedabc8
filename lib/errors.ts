// One error class for the whole library. Every failure a user can cause or meet carries a stable
// `code`, and where it applies the offending file, tensor, expected and actual value, so that a
// message reads the same whether it came from TypeScript validation or from native code.

export type ErrorCode =
  | 'ERR_ARGUMENT' // a bad option or argument value
  | 'ERR_SHAPE' // tensor shapes do not fit together
  | 'ERR_DTYPE' // a tensor has the wrong element type
  | 'ERR_DEVICE' // a device was asked for that does not exist, or tensors live on different devices
  | 'ERR_NOT_FINITE' // NaN or infinity in an input
  | 'ERR_IO' // a file could not be read or written
  | 'ERR_WEIGHTS_FORMAT' // a weights/tensor file is malformed or not what it claims to be
  | 'ERR_WEIGHTS_MISSING' // a tensor or file that a model needs is absent
  | 'ERR_WEIGHTS_UNEXPECTED' // a tensor the model does not know is present
  | 'ERR_CONFIG' // a config.json is missing keys or disagrees with the weights
  | 'ERR_TOKENIZER' // a tokenizer model or vocabulary is malformed
  | 'ERR_CUDA' // a CUDA call or kernel failed
  | 'ERR_CUDA_OOM' // GPU memory exhausted
  | 'ERR_CUDA_FAULT' // a kernel faulted: the device is unusable until the process restarts
  | 'ERR_OOM' // host memory exhausted
  | 'ERR_DISPOSED' // a tensor or model was used after dispose()
  | 'ERR_ABORTED' // the caller's AbortSignal fired
  | 'ERR_NATIVE_LOAD' // the native addon could not be loaded
  | 'ERR_UNSUPPORTED' // a valid request this build or backend cannot serve
  | 'ERR_FFMPEG' // ffmpeg missing or failed
  | 'ERR_USAGE' // command-line usage error
  | 'ERR_INTERNAL'; // a bug: an invariant of this library broke

export interface ErrorDetails {
  /** The file the error is about. */
  file?: string;
  /** The tensor (by name) the error is about. */
  tensor?: string;
  /** What was expected, in words or as a value. */
  expected?: unknown;
  /** What was found instead. */
  got?: unknown;
  /** The underlying error, if any. */
  cause?: unknown;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(describe).join(', ')}]`;
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Formats a message in the library's one shape: `what: expected X, got Y (tensor 'n', file 'f')`. */
export function formatMessage(what: string, details: ErrorDetails = {}): string {
  let message = what;
  if ('expected' in details || 'got' in details) {
    const parts: string[] = [];
    if ('expected' in details) parts.push(`expected ${describe(details.expected)}`);
    if ('got' in details) parts.push(`got ${describe(details.got)}`);
    message += `: ${parts.join(', ')}`;
  }
  const where: string[] = [];
  if (details.tensor !== undefined) where.push(`tensor '${details.tensor}'`);
  if (details.file !== undefined) where.push(`file '${details.file}'`);
  if (where.length > 0) message += ` (${where.join(', ')})`;
  return message;
}

export class StepVideoError extends Error {
  readonly code: ErrorCode;
  readonly file: string | undefined;
  readonly tensor: string | undefined;
  readonly expected: unknown;
  readonly got: unknown;

  constructor(code: ErrorCode, what: string, details: ErrorDetails = {}) {
    super(formatMessage(what, details), details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = 'StepVideoError';
    this.code = code;
    this.file = details.file;
    this.tensor = details.tensor;
    this.expected = details.expected;
    this.got = details.got;
  }
}

export function isStepVideoError(error: unknown, code?: ErrorCode): error is StepVideoError {
  return error instanceof StepVideoError && (code === undefined || error.code === code);
}

/** Throws ERR_ABORTED if the signal has fired; the abort reason becomes the cause. */
export function throwIfAborted(signal: AbortSignal | undefined, what = 'operation'): void {
  if (signal?.aborted) {
    throw new StepVideoError('ERR_ABORTED', `${what} aborted`, { cause: signal.reason });
  }
}

/** Re-labels a foreign error (fs, JSON, ...) as a StepVideoError, keeping StepVideoErrors as they are. */
export function asStepVideoError(error: unknown, code: ErrorCode, what: string, details: ErrorDetails = {}): StepVideoError {
  if (error instanceof StepVideoError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new StepVideoError(code, `${what}: ${reason}`, { ...details, cause: error });
}
