// Typed wrapper of the embedding kernel family (native/embedding.h). Token ids start on the host
// (tokenizer output, CLI inputs), so they are range-checked here, where a bad id can be named,
// and only then uploaded to the table's device.
import { StepVideoError } from '../errors.js';
import { opsOn } from '../context.js';
import { requireFloat, withOutput } from '../op-utils.js';
import { type Shape, formatShape, numel } from '../shape.js';
import { Tensor } from '../tensor.js';

/** Token ids as they come from a tokenizer or a safetensors input. */
export type TokenIds = Int32Array | BigInt64Array;

/**
 * Throws ERR_ARGUMENT naming the first id outside [0, vocab) (by its position in `shape`).
 * `what` names the tensor in the message ('input_ids').
 */
export function checkTokenIds(ids: TokenIds, vocab: number, shape: Shape = [ids.length], what = 'ids'): void {
  for (let i = 0; i < ids.length; i++) {
    const id = Number(ids[i]!);
    if (id < 0 || id >= vocab) {
      throw new StepVideoError('ERR_ARGUMENT', 'token id out of range of the embedding table', {
        tensor: what,
        expected: `0 <= id < ${vocab}`,
        got: `${id} at ${formatShape(unravel(i, shape))}`,
      });
    }
  }
}

function unravel(flat: number, shape: Shape): number[] {
  const index = new Array<number>(shape.length).fill(0);
  for (let d = shape.length - 1, rest = flat; d >= 0; d--) {
    index[d] = rest % shape[d]!;
    rest = Math.floor(rest / shape[d]!);
  }
  return index;
}

/**
 * nn.Embedding: rows of `table` [vocab, D] picked by host `ids` of the given shape (default 1-D)
 * → [...shape, D] in the table's dtype, on the table's device.
 */
export function embedding(table: Tensor, ids: TokenIds, shape: Shape = [ids.length], what = 'ids'): Tensor {
  requireFloat('embedding', table);
  if (table.ndim !== 2) throw new StepVideoError('ERR_SHAPE', 'embedding: table must be [vocab, dim]', { got: formatShape(table.shape), tensor: 'table' });
  if (numel(shape) !== ids.length) {
    throw new StepVideoError('ERR_SHAPE', 'embedding: ids do not fill their shape', { tensor: what, expected: `${numel(shape)} ids for ${formatShape(shape)}`, got: ids.length });
  }
  const [vocab, dim] = table.shape as [number, number];
  checkTokenIds(ids, vocab, shape, what);
  using onDevice = Tensor.from(ids, shape, { device: table.device });
  return withOutput([...shape, dim], table.dtype, table, (out) => opsOn(out.device).embedding(out.handle, table.handle, onDevice.handle));
}
