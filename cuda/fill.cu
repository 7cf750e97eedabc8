// CUDA twin of native/cpu/fill.cc: every element set to one value, converted to the tensor's dtype.
#include <type_traits>

#include "../native/cast.h"
#include "../native/kernels.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

template <typename T>
__global__ void fill_kernel(T* __restrict__ out, T value, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = value;
}

}  // namespace

void fill(const ExecContext& ctx, const FillArgs& args) {
  use_device(ctx.device);
  int64_t n = args.out.numel();
  if (n == 0) return;
  cudaStream_t stream = work_stream(ctx);
  dispatch_any(args.out.dtype, [&](auto t) {
    using T = decltype(t);
    // The f64 value by the shared rules (native/cast.h): saturating for integers, NaN -> 0.
    T value;
    if constexpr (std::is_integral_v<T>) {
      value = cast::from_real<T>(args.value);
    } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      value = __float2bfloat16_rn(static_cast<float>(args.value));
    } else if constexpr (std::is_same_v<T, __half>) {
      value = __float2half_rn(static_cast<float>(args.value));
    } else {
      value = static_cast<float>(args.value);
    }
    launch(SV_HERE, fill_kernel<T>, grid_for(n, 256), 256, 0, stream, static_cast<T*>(args.out.data), value, n);
  });
}

}  // namespace sv::cuda
