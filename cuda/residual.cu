// CUDA twin of native/cpu/residual.cc: out = x + gate[group] ⊙ y, one rounding to the output dtype.
#include <algorithm>

#include "../native/residual.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

// out = x + gate[group] ⊙ y, one block per row: the gate row is found once per block, and every
// access is a 16-byte vector (used when dim is a multiple of the vector width and pointers align).
template <typename T>
__global__ void gated_residual_rows_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ gate,
                                           T* __restrict__ out, int64_t dim, int64_t rows_per_group) {
  constexpr int E = kVecElems<T>;
  const int64_t row = blockIdx.x;
  const int64_t vectors = dim / E;
  const T* gr = gate ? gate + (row / rows_per_group) * dim : nullptr;
  const int64_t base = row * dim;
  for (int64_t vi = threadIdx.x; vi < vectors; vi += blockDim.x) {
    float a[E], b[E], g[E];
    load_vec(x + base + vi * E, a);
    load_vec(y + base + vi * E, b);
    if (gr) {
      load_vec(gr + vi * E, g);
#pragma unroll
      for (int e = 0; e < E; e++) a[e] += g[e] * b[e];
    } else {
#pragma unroll
      for (int e = 0; e < E; e++) a[e] += b[e];
    }
    store_vec(out + base + vi * E, a);
  }
}

template <typename T>
__global__ void gated_residual_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ gate,
                                      T* __restrict__ out, int64_t n, int64_t dim, int64_t rows_per_group) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float g = 1.0f;
    if (gate) {
      const int64_t row = i / dim, j = i % dim;
      g = to_f32(gate[(row / rows_per_group) * dim + j]);
    }
    out[i] = from_f32<T>(to_f32(x[i]) + g * to_f32(y[i]));
  }
}

}  // namespace

void gated_residual(const ExecContext& ctx, const GatedResidualArgs& a) {
  use_device(ctx.device);
  const int64_t n = a.rows * a.dim;
  if (n == 0) return;
  dispatch_float(a.out.dtype, "gated_residual", [&](auto t) {
    using T = decltype(t);
    constexpr int E = kVecElems<T>;
    cudaStream_t stream = work_stream(ctx);
    if (a.dim % E == 0 && a.rows <= 2147483647LL && aligned16(a.x) && aligned16(a.y) && aligned16(a.gate) &&
        aligned16(a.out)) {
      const int threads = static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, (a.dim / E + 31) / 32 * 32)));
      launch(SV_HERE, gated_residual_rows_kernel<T>, static_cast<unsigned>(a.rows), threads, 0, stream,
             a.x.as<const T>(), a.y.as<const T>(), ptr_or_null<T>(a.gate), a.out.as<T>(), a.dim, a.rows_per_group);
    } else {
      launch(SV_HERE, gated_residual_kernel<T>, grid_for(n, 256), 256, 0, stream, a.x.as<const T>(), a.y.as<const T>(),
             ptr_or_null<T>(a.gate), a.out.as<T>(), n, a.dim, a.rows_per_group);
    }
  });
}

}  // namespace sv::cuda
