// CUDA twins of native/cpu/norm.cc. One block per normalised row (LayerNorm, RMSNorm) or per
// (frame, group) (GroupNorm); statistics in f32 with a two-pass mean/variance (the row is small
// enough to stay in L1/L2 between passes); one rounding to the output dtype at the end, except
// where the official numerics round in between (RMSNorm, see native/norm.h).
#include "../native/norm.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block; every thread receives the total. `scratch` holds 32 floats.
__device__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = threadIdx.x < warps ? scratch[threadIdx.x] : 0.0f;
  if (warp == 0) {
    total = warp_sum(total);
    if (lane == 0) scratch[0] = total;
  }
  __syncthreads();
  return scratch[0];
}

template <typename T>
__global__ void layer_norm_kernel(const T* __restrict__ x, T* __restrict__ out, const T* __restrict__ weight,
                                  const T* __restrict__ bias, const T* __restrict__ scale, const T* __restrict__ shift,
                                  int64_t dim, int64_t rows_per_group, float eps) {
  __shared__ float scratch[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * dim;
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) sum += to_f32(xr[j]);
  const float mean = block_sum(sum, scratch) / static_cast<float>(dim);
  float sq = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    float d = to_f32(xr[j]) - mean;
    sq += d * d;
  }
  const float inv = rsqrtf(block_sum(sq, scratch) / static_cast<float>(dim) + eps);
  const int64_t g = row / rows_per_group;
  T* o = out + row * dim;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    float y = (to_f32(xr[j]) - mean) * inv;
    if (weight) y *= to_f32(weight[j]);
    if (bias) y += to_f32(bias[j]);
    if (scale) y *= 1.0f + to_f32(scale[g * dim + j]);
    if (shift) y += to_f32(shift[g * dim + j]);
    o[j] = from_f32<T>(y);
  }
}

template <typename T>
__global__ void rms_norm_kernel(const T* __restrict__ x, T* __restrict__ out, const T* __restrict__ weight, int64_t dim,
                                float eps) {
  __shared__ float scratch[32];
  const T* xr = x + blockIdx.x * dim;
  float sq = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    float v = to_f32(xr[j]);
    sq += v * v;
  }
  const float inv = rsqrtf(block_sum(sq, scratch) / static_cast<float>(dim) + eps);
  T* o = out + blockIdx.x * dim;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    // Round the normalised value to T first, as the official RMSNorm does, then apply the weight.
    float n = to_f32(from_f32<T>(to_f32(xr[j]) * inv));
    o[j] = from_f32<T>(weight ? n * to_f32(weight[j]) : n);
  }
}

template <typename T>
__global__ void group_norm_kernel(const T* __restrict__ x, T* __restrict__ out, const T* __restrict__ weight,
                                  const T* __restrict__ bias, int64_t pixels, int64_t channels, int64_t groups,
                                  float eps, bool silu) {
  __shared__ float scratch[32];
  const int64_t frame = blockIdx.x / groups, group = blockIdx.x % groups;
  const int64_t per_group = channels / groups, c0 = group * per_group, count = pixels * per_group;
  const T* xf = x + frame * pixels * channels;
  T* of = out + frame * pixels * channels;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) sum += to_f32(xf[(i / per_group) * channels + c0 + i % per_group]);
  const float mean = block_sum(sum, scratch) / static_cast<float>(count);
  float sq = 0.0f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    float d = to_f32(xf[(i / per_group) * channels + c0 + i % per_group]) - mean;
    sq += d * d;
  }
  const float inv = rsqrtf(block_sum(sq, scratch) / static_cast<float>(count) + eps);
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const int64_t c = c0 + i % per_group, idx = (i / per_group) * channels + c;
    float y = (to_f32(xf[idx]) - mean) * inv * to_f32(weight[c]) + to_f32(bias[c]);
    if (silu) y = y / (1.0f + __expf(-y));
    of[idx] = from_f32<T>(y);
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

template <typename T>
const T* ptr_or_null(const TensorRef& t) {
  return t.data ? t.as<const T>() : nullptr;
}

int threads_for(int64_t dim) { return dim >= 1024 ? 512 : dim >= 256 ? 256 : 128; }

}  // namespace

void layer_norm(const LayerNormArgs& a) {
  use_device(a.out.device);
  if (a.rows == 0) return;
  SV_CHECK(a.rows <= 2147483647LL, "ERR_SHAPE", "layer_norm: too many rows");
  dispatch_float(a.out.dtype, "layer_norm", [&](auto t) {
    using T = decltype(t);
    layer_norm_kernel<T><<<static_cast<unsigned>(a.rows), threads_for(a.dim), 0, stream_of(a.out)>>>(
        a.x.as<const T>(), a.out.as<T>(), ptr_or_null<T>(a.weight), ptr_or_null<T>(a.bias), ptr_or_null<T>(a.scale),
        ptr_or_null<T>(a.shift), a.dim, a.rows_per_group, a.eps);
    CUDA_CHECK_LAUNCH();
  });
}

void rms_norm(const RmsNormArgs& a) {
  use_device(a.out.device);
  if (a.rows == 0) return;
  SV_CHECK(a.rows <= 2147483647LL, "ERR_SHAPE", "rms_norm: too many rows");
  dispatch_float(a.out.dtype, "rms_norm", [&](auto t) {
    using T = decltype(t);
    rms_norm_kernel<T><<<static_cast<unsigned>(a.rows), threads_for(a.dim), 0, stream_of(a.out)>>>(
        a.x.as<const T>(), a.out.as<T>(), ptr_or_null<T>(a.weight), a.dim, a.eps);
    CUDA_CHECK_LAUNCH();
  });
}

void group_norm(const GroupNormArgs& a) {
  use_device(a.out.device);
  const int64_t blocks = a.frames * a.groups;
  if (blocks == 0) return;
  SV_CHECK(blocks <= 2147483647LL, "ERR_SHAPE", "group_norm: too many frames");
  dispatch_float(a.out.dtype, "group_norm", [&](auto t) {
    using T = decltype(t);
    group_norm_kernel<T><<<static_cast<unsigned>(blocks), 512, 0, stream_of(a.out)>>>(
        a.x.as<const T>(), a.out.as<T>(), a.weight.as<const T>(), a.bias.as<const T>(), a.pixels, a.channels, a.groups,
        a.eps, a.silu);
    CUDA_CHECK_LAUNCH();
  });
}

void gated_residual(const GatedResidualArgs& a) {
  use_device(a.out.device);
  const int64_t n = a.rows * a.dim;
  if (n == 0) return;
  dispatch_float(a.out.dtype, "gated_residual", [&](auto t) {
    using T = decltype(t);
    gated_residual_kernel<T><<<grid_for(n, 256), 256, 0, stream_of(a.out)>>>(
        a.x.as<const T>(), a.y.as<const T>(), ptr_or_null<T>(a.gate), a.out.as<T>(), n, a.dim, a.rows_per_group);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sv::cuda
