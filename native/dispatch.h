// How glue code runs a validated kernel on the tensor's device: CPU kernels are queued on the
// executor together with references that keep their storages alive; CUDA launchers are called
// directly (they enqueue on the device stream and return at once).
#pragma once
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

#include "executor.h"
#include "tensor_handle.h"
#ifdef SV_WITH_CUDA
#include "../cuda/runtime_api.h"
#endif

namespace sv {

// Every tensor of an op must live on one device; returns it.
int common_device(std::initializer_list<const NativeTensor*> tensors);

// Every non-null tensor must have `dtype`; names the op and the offending argument otherwise.
void require_dtype(const char* op, DType dtype, std::initializer_list<std::pair<const char*, const NativeTensor*>> tensors);

// Every non-null tensor must hold exactly `count` elements.
void require_numel(const char* op, int64_t count, std::initializer_list<std::pair<const char*, const NativeTensor*>> tensors);

template <typename Fn>
void run_on_cpu(std::initializer_list<const NativeTensor*> tensors, Fn&& fn) {
  std::vector<std::shared_ptr<Storage>> keep;
  keep.reserve(tensors.size());
  for (const NativeTensor* t : tensors)
    if (t != nullptr) keep.push_back(t->storage());
  executor::enqueue([keep = std::move(keep), fn = std::forward<Fn>(fn)]() mutable { fn(); });
}

}  // namespace sv

// Evaluates `expr` (a CUDA launcher call) in builds with the CUDA backend; otherwise reports that
// the build has none. Glue code uses it so the same file compiles either way.
#ifdef SV_WITH_CUDA
#define SV_CUDA(expr) (expr)
#else
#define SV_CUDA(expr) ::sv::fail("ERR_DEVICE", "this build of the addon has no CUDA backend")
#endif
