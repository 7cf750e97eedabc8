// How glue code runs a validated kernel on the tensor's device: CPU kernels are queued on the
// executor together with references that keep their storages alive; CUDA launchers are called
// directly (they enqueue on the device stream and return at once).
#pragma once
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "exec_context.h"
#include "executor.h"
#include "tensor_handle.h"
#ifdef SV_WITH_CUDA
#include "../cuda/runtime_api.h"
#endif

namespace sv {

// Every tensor of an op must live on one device; returns it.
int common_device(std::initializer_list<const NativeTensor*> tensors);

// The execution context an op was called on (ops are methods of NativeContext, native/context_glue.cc:
// `this` is the context), checked to be for the device of the op's tensors. Valid while the JS
// object lives; CPU jobs keep a copy.
const ExecContext& op_context(const Napi::CallbackInfo& info, int device);

// Every non-null tensor must have `dtype`; names the op and the offending argument otherwise.
void require_dtype(const char* op, DType dtype, std::initializer_list<std::pair<const char*, const NativeTensor*>> tensors);

// A per-group gate [groups, dim] over `rows` rows (groups dividing rows, as AdaLN gates per batch
// item): returns rows / groups, or ERR_SHAPE naming the op.
int64_t rows_per_gate_group(const char* op, const TensorRef& gate, int64_t rows, int64_t dim);

// Every non-null tensor must hold exactly `count` elements.
void require_numel(const char* op, int64_t count, std::initializer_list<std::pair<const char*, const NativeTensor*>> tensors);

// Ops enqueued per device (index device + 1), counted where the glue hands a validated op to a
// backend: run_on_cpu for the CPU, SV_CUDA for CUDA. Data movement (writes, read-backs, transfers,
// weight loads) is not counted. Read with native.opCount(device) to count launches per block.
inline std::atomic<int64_t> op_counts[kMaxCudaDevices + 1];
inline void count_op(int device) { op_counts[device + 1].fetch_add(1, std::memory_order_relaxed); }

// Queues `fn` on the CPU executor with references that keep the tensors' storages alive, without
// counting it as an op (data movement).
template <typename Fn>
void enqueue_on_cpu(std::initializer_list<const NativeTensor*> tensors, Fn&& fn) {
  std::vector<std::shared_ptr<Storage>> keep;
  keep.reserve(tensors.size());
  for (const NativeTensor* t : tensors)
    if (t != nullptr) keep.push_back(t->storage());
  executor::enqueue([keep = std::move(keep), fn = std::forward<Fn>(fn)]() mutable { fn(); });
}

// Queues a validated CPU kernel: counted as one op, storages kept alive until it has run.
template <typename Fn>
void run_on_cpu(std::initializer_list<const NativeTensor*> tensors, Fn&& fn) {
  count_op(kCpuDevice);
  enqueue_on_cpu(tensors, std::forward<Fn>(fn));
}

}  // namespace sv

// Evaluates `expr` (a CUDA launcher call) in builds with the CUDA backend; otherwise reports that
// the build has none. Glue code uses it so the same file compiles either way.
// Every CUDA launcher starts with use_device(its tensors' device), so the current device after
// the call is the op's device: that is where the op is counted.
#ifdef SV_WITH_CUDA
#define SV_CUDA(expr) ((expr), ::sv::count_op(::sv::cuda::current_device()))
#else
#define SV_CUDA(expr) ::sv::fail("ERR_DEVICE", "this build of the addon has no CUDA backend")
#endif
