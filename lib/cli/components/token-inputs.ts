// Integer [B, S] inputs of the text-encoder components (token ids, attention masks).
import { StepVideoError } from '../../errors.js';
import type { HostTensor } from '../../io/safetensors.js';
import { formatShape } from '../../shape.js';

export interface HostIds {
  data: Int32Array | BigInt64Array;
  shape: [number, number];
}

/** An i32/i64 [B, S] tensor (with `like`, of that exact shape), or ERR_DTYPE / ERR_SHAPE naming it. */
export function hostTokenIds(tensor: HostTensor, name: string, like?: readonly [number, number]): HostIds {
  if (tensor.dtype !== 'i32' && tensor.dtype !== 'i64') {
    throw new StepVideoError('ERR_DTYPE', `${name} must hold integers`, { tensor: name, expected: 'int32 or int64', got: tensor.dtype });
  }
  const [batch, length] = tensor.shape;
  if (tensor.shape.length !== 2 || batch! < 1 || length! < 1 || (like && (batch !== like[0] || length !== like[1]))) {
    throw new StepVideoError('ERR_SHAPE', `${name} must be [B, S]${like ? ' like input_ids' : ''}`, {
      tensor: name,
      expected: like ? formatShape(like) : '[B, S] with B, S >= 1',
      got: formatShape(tensor.shape),
    });
  }
  return { data: tensor.data as Int32Array | BigInt64Array, shape: [batch!, length!] };
}
