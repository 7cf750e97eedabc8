// Cases of the embedding family (native/embedding.h): i32 and i64 ids, repeated ids, the first and
// last rows of the table, odd widths, and the real tables of Hunyuan-CLIP and Step-LLM (large cases).
import type { DType } from '../../lib/dtype.js';
import { embedding } from '../../lib/kernels/embedding.js';
import { cast } from '../../lib/ops.js';
import { Tensor } from '../../lib/tensor.js';
import { fitEmulated } from '../helpers/gpu.js';
import { Rng, randn } from '../helpers/random.js';
import type { LargeCase, OpCase } from './types.js';

/** float64 lookup: rows of table [vocab, dim] picked by ids. */
export function embeddingRef(table: ArrayLike<number>, dim: number, ids: ArrayLike<number | bigint>): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let r = 0; r < ids.length; r++) {
    const id = Number(ids[r]!);
    for (let j = 0; j < dim; j++) out[r * dim + j] = table[id * dim + j]!;
  }
  return out;
}

/** ids in [0, vocab) that include both ends of the table and repeats. */
function tokenIds(rng: Rng, count: number, vocab: number): Int32Array {
  const ids = Int32Array.from({ length: count }, () => rng.int(0, vocab));
  ids[0] = 0;
  ids[count - 1] = vocab - 1;
  if (count > 3) ids[2] = ids[1]!;
  return ids;
}

function lookupCase(name: string, vocab: number, dim: number, shape: number[], seed: number, wide = false): OpCase {
  const rng = new Rng(seed);
  const table = randn(rng, vocab * dim);
  const ids32 = tokenIds(rng, shape.reduce((a, b) => a * b, 1), vocab);
  const ids = wide ? BigInt64Array.from(ids32, (v) => BigInt(v)) : ids32;
  return {
    name,
    inputs: [{ shape: [vocab, dim], data: table }],
    run: ([t]) => embedding(t!, ids, shape),
    reference: ([t]) => embeddingRef(t!, dim, ids),
    exact: true,
  };
}

export function embeddingCases(): OpCase[] {
  return [
    lookupCase('embedding: BERT word table, i32 ids [2, 16], D 64', 120, 64, [2, 16], 300),
    lookupCase('embedding: i64 ids [2, 7], odd D 131', 97, 131, [2, 7], 301, true),
    lookupCase('embedding: single id, D 6144 (Step-LLM width)', 5, 6144, [1], 302),
    lookupCase('embedding: 1-D ids over a 1-row table', 1, 33, [9], 303),
  ];
}

function largeLookup(name: string, vocab: number, dim: number, shape: [number, number], seed: number): LargeCase {
  // Built on first use: the suite collects these cases even where it is skipped.
  let data: { table: Float32Array; ids: Int32Array } | undefined;
  const inputs = () => {
    if (data === undefined) {
      const rng = new Rng(seed);
      const table = randn(rng, vocab * dim);
      data = { table, ids: tokenIds(rng, shape[0] * shape[1], vocab) };
    }
    return data;
  };
  return {
    name,
    async runGpu(dtype: DType) {
      const { table, ids } = inputs();
      using f32 = Tensor.from(table, [vocab, dim], { device: 'cuda' });
      using onGpu = dtype === 'f32' ? f32.clone() : cast(f32, dtype);
      return embedding(onGpu, ids, shape);
    },
    async runCpuSample() {
      // The CPU twin runs on the rows the ids pick: a table of just those rows, with ids 0..n-1.
      const { table, ids } = inputs();
      const picked = new Float32Array(ids.length * dim);
      ids.forEach((id, r) => picked.set(table.subarray(id * dim, (id + 1) * dim), r * dim));
      using rows = Tensor.from(picked, [ids.length, dim], { device: 'cpu' });
      using out = embedding(rows, Int32Array.from(ids, (_, i) => i), shape);
      return await out.toFloat32();
    },
    sample: (output) => output,
    // A gather: the rows as the table stores them (bf16: the twin's f32 values rounded once, on upload).
    exact: true,
    tolerance: { f32: 0, bf16: 0 },
  };
}

export function embeddingLargeCases(): LargeCase[] {
  // On the emulated device (test/helpers/gpu.ts) the table is made and cast whole on the device at
  // about 5 M values/s: the CLIP case keeps its 47,020 rows (ids far into the table) at a narrower
  // row, the Step-LLM case its 6144-wide rows in a shorter table.
  const clip = fitEmulated(1024, 64, 'D 1024 -> 64 to fit CI time');
  const llm = fitEmulated(8192, 256, '8,192 -> 256 table rows to fit CI time');
  return [
    largeLookup(`embedding: Hunyuan-CLIP word table 47020 x 1024, ids [2, 77]${clip.note}`, 47020, clip.value, [2, 77], 310),
    largeLookup(`embedding: Step-LLM width 6144 (8192-row table), ids [2, 320]${llm.note}`, llm.value, 6144, [2, 320], 311),
  ];
}
