// Kernel test cases, in the manner of ggml's test-backend-ops: each case makes seeded inputs,
// runs the op through the library, and carries an independent float64 reference written in
// TypeScript. test/cpu/kernels.test.ts checks the CPU backend against the references;
// test/gpu/kernels.test.ts runs the same cases on CUDA (f32 and bf16) against the references and
// against the CPU twin. A kernel family adds its cases in one file here and one line in index.ts.
import type { DType } from '../../lib/dtype.js';
import type { Tensor } from '../../lib/tensor.js';

export interface OpInput {
  shape: number[];
  data: Float32Array | Int32Array;
  /** Non-float inputs (lengths, ids) keep their dtype on every backend. */
  dtype?: DType;
}

export interface OpCase {
  name: string;
  inputs: OpInput[];
  run(inputs: Tensor[]): Tensor;
  reference(inputs: Array<ArrayLike<number>>): Float64Array;
  /** Relative tolerance of the f32 backends against the float64 reference (default 2e-6). */
  tolerance?: number;
  /**
   * References of the op with one plausible defect each (a norm's epsilon x10, say). The suites
   * assert the backend's output is more than MUTANT_SEPARATION x the bound they hold it to away from
   * each: a self-check that the case's inputs make the defect visible above rounding, so a kernel
   * with that defect fails at kernel level (docs/TOLERANCES.md, "Kernel cases").
   */
  mutants?: Array<{ defect: string; reference(inputs: Array<ArrayLike<number>>): Float64Array }>;
  /**
   * The result is exact by construction (data movement, gathers, exact casts, fills): every backend
   * must equal the reference value for value (Object.is: -0 and +0 differ), f32 and bf16 runs
   * alike; `tolerance` is then unused.
   */
  exact?: boolean;
  /**
   * f32 tolerance on CUDA where its arithmetic differs from f32 by design (FP8 tensor cores), called
   * after the run so it can depend on the path taken; default: `tolerance`, at least 1e-5.
   * docs/TOLERANCES.md says which path each bound covers.
   */
  cudaF32Tolerance?: () => number;
  /** False where a bf16 variant is meaningless. */
  bf16?: boolean;
}

/**
 * A case too large for a float64 reference or a full CPU run (real model shapes): the GPU suite
 * runs it whole on CUDA and compares `sample` of the output with the CPU twin run on the
 * corresponding slice of the inputs.
 */
export interface LargeCase {
  name: string;
  /** Runs the op on the given device/dtype; returns the full output. */
  runGpu(dtype: DType): Promise<Tensor>;
  /** Runs the CPU twin on the sampled part; returns the expected values of the sampled part. */
  runCpuSample(): Promise<Float32Array>;
  /** Extracts the sampled part from the full GPU output (already read back as f32). */
  sample(output: Float32Array): Float32Array;
  /** Relative tolerance for f32 and bf16 runs against the CPU twin. */
  tolerance: { f32: number; bf16: number };
  /**
   * Exact by construction: the sample must equal the CPU twin's values as the output dtype stores
   * them (bf16 outputs against the twin's values rounded to bf16), value for value.
   */
  exact?: boolean;
  /** Overrides `tolerance.f32`, called after the run (the path taken may set it; see OpCase). */
  cudaF32Tolerance?: () => number;
  /** The dtypes the GPU suite runs (default both): f32 may be left out where it takes minutes. */
  dtypes?: ReadonlyArray<'f32' | 'bf16'>;
}

/** How far (in multiples of a case's bound) a backend's output must be from every mutant reference. */
export const MUTANT_SEPARATION = 10;
