// The execution context: everything a launcher needs besides its arguments. The JavaScript
// ExecutionContext (lib/context.ts) owns one (native/context_glue.cc); the glue of every op passes
// it to the cpu:: or cuda:: launcher, which takes its stream, scratch memory, cuBLASLt handle and
// kernel choices from here and from nowhere else (no global stream, no environment, no
// per-device policy table).
//
// Streams: the contexts of one CUDA device share that device's work stream and copy stream. One
// queue per device keeps program order equal to execution order across jobs, and the
// stream-ordered memory pool frees on it; what differs between the contexts of a device is their
// kernel policy. The communication stream is empty until a communicator is attached (several
// GPUs for one job).
#pragma once
#include "kernel_policy.h"
#include "storage.h"

namespace sv {

namespace cuda {
struct BlasLt;     // a device's cuBLASLt handle (cuda/gemm_plans.cu)
struct Workspace;  // a device's scratch memory: the cuBLASLt workspace (cuda/runtime.cu)
}  // namespace cuda

struct ExecContext {
  int device = kCpuDevice;
  void* work_stream = nullptr;  // cudaStream_t: every kernel, stream-ordered allocation and free
  void* copy_stream = nullptr;  // cudaStream_t: uploads that overlap the work (weight streaming)
  void* comm_stream = nullptr;  // cudaStream_t: collectives; nullptr until a communicator is attached
  cuda::Workspace* workspace = nullptr;
  cuda::BlasLt* blaslt = nullptr;
  KernelPolicy policy;
};

// The context of the CPU backend (one kernel per op: the policy is not read there).
inline ExecContext cpu_context() { return ExecContext{}; }

}  // namespace sv
