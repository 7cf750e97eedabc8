// The kernel choices of a CUDA device: which attention, conv and GEMM kernels run, the Hopper
// attention's variant, autotuning, and the opt-in paths allowed before they were validated on a GPU.
// Part of every execution context (native/exec_context.h), set from JavaScript (lib/kernel-policy.ts
// reads the environment once; tests, benchmarks and server jobs pass their own) and read by the
// CUDA launchers from the context of the op: no launcher reads the environment itself.
#pragma once

namespace sv {

enum class AttentionChoice { automatic, generic, mma, hopper };
enum class HopperSchedule { serial, overlap, pingpong };
enum class ConvChoice { automatic, wgmma };
enum class GemmChoice { automatic, fallback };

struct KernelPolicy {
  AttentionChoice attention = AttentionChoice::automatic;
  HopperSchedule hopper_schedule = HopperSchedule::pingpong;
  int hopper_stages = 2;  // 2 or 3
  // `automatic` may pick the Hopper attention kernel (off until validated on an H200).
  bool hopper_in_auto = false;
  // `automatic` conv never picks wgmma until validated; `wgmma` asks for it where it can run.
  ConvChoice conv = ConvChoice::automatic;
  GemmChoice gemm = GemmChoice::automatic;
  bool gemm_autotune = false;
  // cuBLASLt's fast FP8 accumulation (read when a plan is made).
  bool fp8_fast_accum = false;
};

}  // namespace sv
