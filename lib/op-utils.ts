// Checks and helpers shared by every typed op wrapper (lib/ops.ts, lib/kernels/*.ts).
import { type DType, isFloatDType } from './dtype.js';
import type { Device } from './device.js';
import { StepVideoError } from './errors.js';
import { type Shape, formatShape } from './shape.js';
import { Tensor } from './tensor.js';

/** Every tensor on one device; returns it. */
export function sameDevice(op: string, ...tensors: Array<Tensor | undefined>): Device {
  const present = tensors.filter((t): t is Tensor => t !== undefined);
  const device = present[0]!.device;
  for (const t of present) {
    if (t.device !== device) {
      throw new StepVideoError('ERR_DEVICE', `${op}: inputs are on different devices`, { expected: device.name, got: t.device.name });
    }
  }
  return device;
}

export function requireFloat(op: string, ...tensors: Array<Tensor | undefined>): void {
  for (const t of tensors) {
    if (t && !isFloatDType(t.dtype)) throw new StepVideoError('ERR_DTYPE', `${op} needs a floating-point tensor`, { got: t.dtype });
  }
}

export function sameDType(op: string, ...tensors: Array<Tensor | undefined>): void {
  const present = tensors.filter((t): t is Tensor => t !== undefined);
  for (const t of present) {
    if (t.dtype !== present[0]!.dtype) {
      throw new StepVideoError('ERR_DTYPE', `${op}: inputs must share a dtype`, { expected: present[0]!.dtype, got: t.dtype });
    }
  }
}

export function requireRank(op: string, name: string, t: Tensor, rank: number, layout: string): void {
  if (t.ndim !== rank) throw new StepVideoError('ERR_SHAPE', `${op}: ${name} must be ${layout}`, { got: formatShape(t.shape), tensor: name });
}

/** Runs `enqueue` with a fresh output tensor; frees it if enqueueing throws. */
export function withOutput(shape: Shape, dtype: DType, like: Tensor, enqueue: (out: Tensor) => void): Tensor {
  const out = Tensor.empty(shape, dtype, like.device);
  try {
    enqueue(out);
  } catch (error) {
    out.dispose();
    throw error;
  }
  return out;
}
