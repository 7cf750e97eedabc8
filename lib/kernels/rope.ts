// The host side of 3D RoPE: the cos/sin tables the head-split kernel reads (lib/kernels/split-heads.ts,
// native/split_heads.h), built here so that the official bf16 rounding of the angles is reproduced
// exactly (and tested against the golden quirks) before the kernel ever sees them.
import { roundBf16 } from '../dtype.js';
import type { DeviceSpec } from '../device.js';
import { StepVideoError } from '../errors.js';
import { formatShape } from '../shape.js';
import { Tensor } from '../tensor.js';

// ---- RoPE tables ----

/**
 * How the cos/sin tables are computed. Both take the inverse frequencies 1/theta^(2j/dim) and the
 * angles p·inv_freq in f32, as the official code does in every precision (the float64 golden
 * reference included). 'exact' then takes cos/sin exactly (one rounding to f32); 'bf16-official'
 * rounds the angle to bf16 first and cos/sin to bf16 after, as the official bf16 run does.
 */
export type RopeAngles = 'exact' | 'bf16-official';

/**
 * RoPE cos/sin for one slice of width `dim` at positions 0..positions-1, in the official layout:
 * [positions, dim] with the dim/2 frequencies repeated in both halves (the rotate-half pairing).
 */
export function ropeCosSin(positions: number, dim: number, options: { theta?: number; angles?: RopeAngles } = {}): { cos: Float32Array; sin: Float32Array } {
  const { theta = 10000, angles = 'exact' } = options;
  if (!Number.isInteger(dim) || dim <= 0 || dim % 2 !== 0 || !Number.isInteger(positions) || positions < 0) {
    throw new StepVideoError('ERR_ARGUMENT', 'ropeCosSin needs an even positive width and a position count', { got: { positions, dim } });
  }
  const half = dim / 2;
  const cos = new Float32Array(positions * dim);
  const sin = new Float32Array(positions * dim);
  const f32 = Math.fround;
  const round = angles === 'exact' ? f32 : (x: number) => roundBf16(f32(x));
  for (let j = 0; j < half; j++) {
    const invFreq = f32(1 / f32(f32(theta) ** f32((2 * j) / dim)));
    for (let p = 0; p < positions; p++) {
      const angle = angles === 'exact' ? f32(p * invFreq) : roundBf16(f32(p * invFreq));
      const c = round(Math.cos(angle));
      const s = round(Math.sin(angle));
      cos[p * dim + j] = cos[p * dim + j + half] = c;
      sin[p * dim + j] = sin[p * dim + j + half] = s;
    }
  }
  return { cos, sin };
}

/**
 * 3D RoPE over a (frames, rows, cols) token grid with the head dimension split into three slices
 * (DiT: [64, 32, 32]); owns the f32 [2, T] table the kernel reads (native/rope.h's layout).
 */
export class Rope3D implements Disposable {
  readonly grid: readonly [number, number, number];
  readonly split: readonly [number, number, number];
  readonly table: Tensor;

  private constructor(grid: readonly [number, number, number], split: readonly [number, number, number], table: Tensor) {
    this.grid = grid;
    this.split = split;
    this.table = table;
  }

  static create(
    grid: readonly [number, number, number],
    options: { split: readonly [number, number, number]; theta?: number; angles?: RopeAngles; device?: DeviceSpec },
  ): Rope3D {
    const { split } = options;
    if (grid.some((g) => !Number.isInteger(g) || g <= 0) || split.some((s) => !Number.isInteger(s) || s <= 0 || s % 2 !== 0)) {
      throw new StepVideoError('ERR_ARGUMENT', 'Rope3D needs positive grid sizes and positive even slice widths', {
        got: `grid ${formatShape(grid)}, split ${formatShape(split)}`,
      });
    }
    const halves = split.map((s) => s / 2);
    const entries = grid.reduce((total, g, axis) => total + g * halves[axis]!, 0);
    const data = new Float32Array(2 * entries);
    let offset = 0;
    for (let axis = 0; axis < 3; axis++) {
      const { cos, sin } = ropeCosSin(grid[axis]!, split[axis]!, options);
      const half = halves[axis]!;
      for (let p = 0; p < grid[axis]!; p++) {
        for (let j = 0; j < half; j++) {
          data[offset + p * half + j] = cos[p * 2 * half + j]!;
          data[entries + offset + p * half + j] = sin[p * 2 * half + j]!;
        }
      }
      offset += grid[axis]! * half;
    }
    const table = Tensor.from(data, [2, entries], { dtype: 'f32', ...(options.device ? { device: options.device } : {}) });
    return new Rope3D([...grid], [...split], table);
  }

  get tokens(): number {
    return this.grid[0] * this.grid[1] * this.grid[2];
  }

  dispose(): void {
    this.table.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
