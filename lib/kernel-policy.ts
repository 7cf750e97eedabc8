// The kernel choices of an execution context (lib/context.ts; native/kernel_policy.h): which
// attention, conv and GEMM kernels run, the Hopper attention's variant, GEMM autotuning, FP8 fast
// accumulation, and the opt-in paths allowed before they were validated on a GPU. The environment
// is read once, here, for the default context of the first CUDA device; after that kernels are
// chosen by context (context.withPolicy(...).run(fn), Device.withKernelPolicy), as tests,
// benchmarks and server jobs do.
import { StepVideoError } from './errors.js';

export interface KernelPolicy {
  /** auto: the fastest kernel that takes the call; generic, mma, hopper: that kernel, or ERR_UNSUPPORTED. */
  attention: 'auto' | 'generic' | 'mma' | 'hopper';
  /** The Hopper attention's warpgroup schedule (benchmark knob). */
  hopperSchedule: 'serial' | 'overlap' | 'pingpong';
  /** The Hopper attention's K/V ring depth. */
  hopperStages: 2 | 3;
  /** Whether `auto` may pick the Hopper attention (false until it is validated on an H200). */
  hopperInAuto: boolean;
  /** auto: the mma.sync / SIMT kernels; wgmma: the Hopper conv where it can run (opt-in until validated). */
  conv: 'auto' | 'wgmma';
  /** auto: cuBLASLt where it is loaded; fallback: the own GEMM kernel always. */
  gemm: 'auto' | 'fallback';
  /** Time up to 8 cuBLASLt algorithms per shape on first use and keep the fastest (opt-in until validated). */
  gemmAutotune: boolean;
  /** cuBLASLt's fast FP8 accumulation (read when a GEMM plan is made). */
  fp8FastAccum: boolean;
}

export const DEFAULT_KERNEL_POLICY: Readonly<KernelPolicy> = Object.freeze({
  attention: 'auto',
  hopperSchedule: 'pingpong',
  hopperStages: 2,
  hopperInAuto: false,
  conv: 'auto',
  gemm: 'auto',
  gemmAutotune: false,
  fp8FastAccum: false,
});

function choice<T extends string>(env: NodeJS.ProcessEnv, name: string, accepted: readonly T[], fallback: T): T {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  if ((accepted as readonly string[]).includes(value)) return value as T;
  throw new StepVideoError('ERR_ARGUMENT', `${name} must be one of ${accepted.join(', ')}, got '${value}'`);
}

/**
 * The policy the environment asks for (README, "Environment variables"): STEPVIDEO_ATTENTION,
 * STEPVIDEO_ATTENTION_HOPPER_SCHEDULE / _STAGES, STEPVIDEO_CONV_KERNEL, STEPVIDEO_GEMM,
 * STEPVIDEO_GEMM_AUTOTUNE=1, STEPVIDEO_FP8_FAST_ACCUM=1. The Hopper variables are read only when the
 * Hopper attention can run, so a stray value cannot break the default paths.
 */
export function kernelPolicyFromEnvironment(env: NodeJS.ProcessEnv = process.env): KernelPolicy {
  const policy: KernelPolicy = {
    ...DEFAULT_KERNEL_POLICY,
    attention: choice(env, 'STEPVIDEO_ATTENTION', ['auto', 'generic', 'mma', 'hopper'], 'auto'),
    conv: choice(env, 'STEPVIDEO_CONV_KERNEL', ['auto', 'wgmma'], 'auto'),
    gemm: choice(env, 'STEPVIDEO_GEMM', ['auto', 'fallback'], 'auto'),
    gemmAutotune: env.STEPVIDEO_GEMM_AUTOTUNE === '1',
    fp8FastAccum: env.STEPVIDEO_FP8_FAST_ACCUM === '1',
  };
  if (policy.attention === 'hopper' || policy.hopperInAuto) {
    policy.hopperSchedule = choice(env, 'STEPVIDEO_ATTENTION_HOPPER_SCHEDULE', ['serial', 'overlap', 'pingpong'], 'pingpong');
    policy.hopperStages = Number(choice(env, 'STEPVIDEO_ATTENTION_HOPPER_STAGES', ['2', '3'], '2')) as 2 | 3;
  }
  return policy;
}

let fromEnvironment: KernelPolicy | undefined;

/** The environment's policy, read on the first call of the process (the first CUDA device). */
export function environmentKernelPolicy(): KernelPolicy {
  fromEnvironment ??= kernelPolicyFromEnvironment();
  return { ...fromEnvironment };
}
