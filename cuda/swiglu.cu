// CUDA twin of native/cpu/swiglu.cc: one thread per output element (grid-stride), so the gate and
// up halves of a row are each read coalesced.
#include "../native/swiglu.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

template <typename T>
__global__ void swiglu_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t rows, int64_t half) {
  const int64_t n = rows * half;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = i / half, col = i % half;
    const float gate = to_f32(x[row * 2 * half + col]);
    const float up = to_f32(x[row * 2 * half + half + col]);
    // expf, not __expf: the fast intrinsic loses accuracy for large |gate|.
    out[i] = from_f32<T>(gate / (1.0f + expf(-gate)) * up);
  }
}

}  // namespace

void swiglu(const ExecContext& ctx, const SwigluArgs& a) {
  use_device(ctx.device);
  const int64_t n = a.rows * a.half;
  if (n == 0) return;
  dispatch_float(a.out.dtype, "swiglu", [&](auto t) {
    using T = decltype(t);
    launch(SV_HERE, swiglu_kernel<T>, grid_for(n, 256), 256, 0, work_stream(ctx), a.x.as<const T>(), a.out.as<T>(),
           a.rows, a.half);
  });
}

}  // namespace sv::cuda
