// CUDA twins of native/cpu/reduce.cc: row softmax and sum/mean/max over one dimension.
// One block per row (softmax) or per output element group; f32 accumulation.
#include <cfloat>

#include "../native/kernels.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

__device__ __forceinline__ float warp_max(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Block-wide reduction through shared memory; every thread gets the result.
template <bool IsMax>
__device__ float block_reduce(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = IsMax ? warp_max(v) : warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = static_cast<int>(threadIdx.x) < warps ? scratch[threadIdx.x] : (IsMax ? -FLT_MAX : 0.0f);
  if (warp == 0) {
    r = IsMax ? warp_max(r) : warp_sum(r);
    if (lane == 0) scratch[0] = r;
  }
  __syncthreads();
  return scratch[0];
}

template <typename T>
__global__ void softmax_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t cols) {
  SV_SHARED(float, scratch, [32]);
  const T* row = x + blockIdx.x * cols;
  T* orow = out + blockIdx.x * cols;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = fmaxf(m, to_f32(row[j]));
  m = block_reduce<true>(m, scratch);
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) s += m == -INFINITY ? 0.0f : __expf(to_f32(row[j]) - m);
  s = block_reduce<false>(s, scratch);
  const float inv = s > 0.0f ? 1.0f / s : 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    orow[j] = from_f32<T>(m == -INFINITY ? 0.0f : __expf(to_f32(row[j]) - m) * inv);
}

// One thread per (outer, inner) output; the reduced dimension is walked with stride `inner`.
template <typename T>
__global__ void reduce_kernel(const T* __restrict__ x, T* __restrict__ out, ReduceOp op, int64_t outer, int64_t dim,
                              int64_t inner) {
  const int64_t n = outer * inner;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < n; idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t o = idx / inner, i = idx % inner;
    const T* base = x + o * dim * inner + i;
    float acc = op == ReduceOp::max ? -INFINITY : 0.0f;
    for (int64_t d = 0; d < dim; d++) {
      float v = to_f32(base[d * inner]);
      acc = op == ReduceOp::max ? fmaxf(acc, v) : acc + v;
    }
    if (op == ReduceOp::mean) acc = dim > 0 ? acc / static_cast<float>(dim) : NAN;
    out[idx] = from_f32<T>(acc);
  }
}

}  // namespace

void softmax(const ExecContext& ctx, const SoftmaxArgs& args) {
  use_device(ctx.device);
  if (args.rows == 0) return;
  SV_CHECK(args.rows <= 2147483647LL, "ERR_SHAPE", "softmax: too many rows for one launch");
  dispatch_float(args.out.dtype, "softmax", [&](auto t) {
    using T = decltype(t);
    launch(SV_HERE, softmax_kernel<T>, static_cast<unsigned>(args.rows), 256, 0, work_stream(ctx),
           args.x.as<const T>(), args.out.as<T>(), args.cols);
  });
}

void reduce(const ExecContext& ctx, const ReduceArgs& args) {
  use_device(ctx.device);
  int64_t n = args.outer * args.inner;
  if (n == 0) return;
  dispatch_float(args.out.dtype, "reduce", [&](auto t) {
    using T = decltype(t);
    launch(SV_HERE, reduce_kernel<T>, grid_for(n, 256), 256, 0, work_stream(ctx), args.x.as<const T>(),
           args.out.as<T>(), args.op, args.outer, args.dim, args.inner);
  });
}

}  // namespace sv::cuda
