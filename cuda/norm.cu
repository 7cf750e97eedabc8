// CUDA twins of native/cpu/norm.cc. One block per normalised row (LayerNorm, RMSNorm): statistics
// in f32 with a two-pass mean/variance (the row is small enough to stay in L1/L2 between passes);
// GroupNorm of video frames has its own three-kernel path (see gn_partial_kernel). One rounding
// to the output dtype at the end, except where the official numerics round in between (RMSNorm,
// see native/norm.h).
#include <algorithm>
#include <string>
#include <utility>

#include "../native/norm.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

// Sum over the block; every thread receives the total. `scratch` holds 32 floats.
__device__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = static_cast<int>(threadIdx.x) < warps ? scratch[threadIdx.x] : 0.0f;
  if (warp == 0) {
    total = warp_sum(total);
    if (lane == 0) scratch[0] = total;
  }
  __syncthreads();
  return scratch[0];
}

// ---- LayerNorm: the pieces the forward and backward kernels share ----

// The statistics of one row: mean and rstd = 1 / sqrt(var + eps).
struct RowStats {
  float mean, rstd;
};

// Vector `it` of this thread's share of a row held in registers: vectors threadIdx.x,
// threadIdx.x + blockDim.x, ...
__device__ __forceinline__ int64_t row_vector(int it) { return threadIdx.x + static_cast<int64_t>(it) * blockDim.x; }

// Calls fn(it, vi) for each of this thread's kItems vectors that lies in the row (vi < vectors).
template <int kItems, typename Fn>
__device__ __forceinline__ void for_row_vectors(int64_t vectors, Fn&& fn) {
#pragma unroll
  for (int it = 0; it < kItems; it++) {
    const int64_t vi = row_vector(it);
    if (vi < vectors) fn(it, vi);
  }
}

// Loads the row xr into v (kItems vectors per thread, zeros past the row: `vectors` = dim / vector
// width) and returns its statistics: a two-pass mean/variance from the registers, f32 block sums.
template <typename T, int kItems>
__device__ __forceinline__ RowStats load_row_stats(const T* __restrict__ xr, int64_t dim, int64_t vectors, float eps,
                                                   float* scratch, float (&v)[kItems][kVecElems<T>]) {
  constexpr int E = kVecElems<T>;
  float sum = 0.0f;
#pragma unroll
  for (int it = 0; it < kItems; it++) {
    const int64_t vi = row_vector(it);
    if (vi < vectors) {
      load_vec(xr + vi * E, v[it]);
#pragma unroll
      for (int e = 0; e < E; e++) sum += v[it][e];
    } else {
#pragma unroll
      for (int e = 0; e < E; e++) v[it][e] = 0.0f;
    }
  }
  const float mean = block_sum(sum, scratch) / static_cast<float>(dim);
  float sq = 0.0f;
  for_row_vectors<kItems>(vectors, [&](int it, int64_t) {
#pragma unroll
    for (int e = 0; e < E; e++) {
      const float d = v[it][e] - mean;
      sq += d * d;
    }
  });
  return {mean, rsqrtf(block_sum(sq, scratch) / static_cast<float>(dim) + eps)};
}

// The same statistics of the row xr read with block-strided loops (any width and alignment).
template <typename T>
__device__ __forceinline__ RowStats row_stats(const T* __restrict__ xr, int64_t dim, float eps, float* scratch) {
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) sum += to_f32(xr[j]);
  const float mean = block_sum(sum, scratch) / static_cast<float>(dim);
  float sq = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float d = to_f32(xr[j]) - mean;
    sq += d * d;
  }
  return {mean, rsqrtf(block_sum(sq, scratch) / static_cast<float>(dim) + eps)};
}

// y ·= p, y ·= 1 + p and y += p for the 16-byte vector p at src (the affine and modulation steps).
template <typename T>
__device__ __forceinline__ void mul_vec(const T* src, float (&y)[kVecElems<T>]) {
  float p[kVecElems<T>];
  load_vec(src, p);
#pragma unroll
  for (int e = 0; e < kVecElems<T>; e++) y[e] *= p[e];
}
template <typename T>
__device__ __forceinline__ void mul_one_plus_vec(const T* src, float (&y)[kVecElems<T>]) {
  float p[kVecElems<T>];
  load_vec(src, p);
#pragma unroll
  for (int e = 0; e < kVecElems<T>; e++) y[e] *= 1.0f + p[e];
}
template <typename T>
__device__ __forceinline__ void add_vec(const T* src, float (&y)[kVecElems<T>]) {
  float p[kVecElems<T>];
  load_vec(src, p);
#pragma unroll
  for (int e = 0; e < kVecElems<T>; e++) y[e] += p[e];
}

// LayerNorm (+affine, +modulation) with the row held in registers: one read of x, one write of out
// (the bandwidth floor), vectorised. Each thread owns kItems vectors of the row; used when the row
// fits (dim / vector width <= threads · kItems) and every pointer is 16-byte aligned.
template <typename T, int kItems>
__global__ void layer_norm_vec_kernel(const T* __restrict__ x, T* __restrict__ out, const T* __restrict__ weight,
                                      const T* __restrict__ bias, const T* __restrict__ scale,
                                      const T* __restrict__ shift, int64_t dim, int64_t rows_per_group, float eps) {
  constexpr int E = kVecElems<T>;
  SV_SHARED(float, scratch, [32]);
  const int64_t row = blockIdx.x;
  const int64_t vectors = dim / E;
  float v[kItems][E];
  const RowStats s = load_row_stats<T, kItems>(x + row * dim, dim, vectors, eps, scratch, v);
  const int64_t group_offset = (row / rows_per_group) * dim;
  T* o = out + row * dim;
  for_row_vectors<kItems>(vectors, [&](int it, int64_t vi) {
    float y[E];
#pragma unroll
    for (int e = 0; e < E; e++) y[e] = (v[it][e] - s.mean) * s.rstd;
    if (weight) mul_vec(weight + vi * E, y);
    if (bias) add_vec(bias + vi * E, y);
    if (scale) mul_one_plus_vec(scale + group_offset + vi * E, y);
    if (shift) add_vec(shift + group_offset + vi * E, y);
    store_vec(o + vi * E, y);
  });
}

template <typename T>
__global__ void layer_norm_kernel(const T* __restrict__ x, T* __restrict__ out, const T* __restrict__ weight,
                                  const T* __restrict__ bias, const T* __restrict__ scale, const T* __restrict__ shift,
                                  int64_t dim, int64_t rows_per_group, float eps) {
  SV_SHARED(float, scratch, [32]);
  const int64_t row = blockIdx.x;
  const T* xr = x + row * dim;
  const RowStats s = row_stats(xr, dim, eps, scratch);
  const int64_t g = row / rows_per_group;
  T* o = out + row * dim;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    float y = (to_f32(xr[j]) - s.mean) * s.rstd;
    if (weight) y *= to_f32(weight[j]);
    if (bias) y += to_f32(bias[j]);
    if (scale) y *= 1.0f + to_f32(scale[g * dim + j]);
    if (shift) y += to_f32(shift[g * dim + j]);
    o[j] = from_f32<T>(y);
  }
}

// ---- LayerNorm backward (input gradient only) ----
// With g = dy · weight · (1 + scale[group]) and x̂ = (x - mean) · rstd recomputed from x as the
// forward does: dx = rstd · (g - mean(g) - x̂ · mean(g · x̂)). One block per row, as the forward.

// One element of dx from the row's two reductions (both kernels below share it).
__device__ __forceinline__ float layer_norm_dx(float g, float xhat, float mean_g, float mean_gx, float rstd) {
  return rstd * (g - mean_g - xhat * mean_gx);
}

// The row held in registers (x̂ and g, kItems vectors per thread): x and dy read once, dx written
// once. Same launch shape as layer_norm_vec_kernel.
template <typename T, int kItems>
__global__ void layer_norm_backward_vec_kernel(const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dx,
                                               const T* __restrict__ weight, const T* __restrict__ scale, int64_t dim,
                                               int64_t rows_per_group, float eps) {
  constexpr int E = kVecElems<T>;
  SV_SHARED(float, scratch, [32]);
  const int64_t row = blockIdx.x;
  const int64_t vectors = dim / E;
  const T* dyr = dy + row * dim;
  float xhat[kItems][E], g[kItems][E] = {};  // g stays 0 past the row
  const RowStats s = load_row_stats<T, kItems>(x + row * dim, dim, vectors, eps, scratch, xhat);
  const int64_t group_offset = (row / rows_per_group) * dim;
  float sum_g = 0.0f, sum_gx = 0.0f;
  for_row_vectors<kItems>(vectors, [&](int it, int64_t vi) {
    load_vec(dyr + vi * E, g[it]);
    if (weight) mul_vec(weight + vi * E, g[it]);
    if (scale) mul_one_plus_vec(scale + group_offset + vi * E, g[it]);
#pragma unroll
    for (int e = 0; e < E; e++) {
      xhat[it][e] = (xhat[it][e] - s.mean) * s.rstd;
      sum_g += g[it][e];
      sum_gx += g[it][e] * xhat[it][e];
    }
  });
  const float mean_g = block_sum(sum_g, scratch) / static_cast<float>(dim);
  const float mean_gx = block_sum(sum_gx, scratch) / static_cast<float>(dim);
  T* o = dx + row * dim;
  for_row_vectors<kItems>(vectors, [&](int it, int64_t vi) {
    float y[E];
#pragma unroll
    for (int e = 0; e < E; e++) y[e] = layer_norm_dx(g[it][e], xhat[it][e], mean_g, mean_gx, s.rstd);
    store_vec(o + vi * E, y);
  });
}

// Any width and alignment: strided passes over the row (statistics, the two reductions, dx), x and
// dy re-read from L1/L2 in each.
template <typename T>
__global__ void layer_norm_backward_kernel(const T* __restrict__ dy, const T* __restrict__ x, T* __restrict__ dx,
                                           const T* __restrict__ weight, const T* __restrict__ scale, int64_t dim,
                                           int64_t rows_per_group, float eps) {
  SV_SHARED(float, scratch, [32]);
  const int64_t row = blockIdx.x;
  const T* xr = x + row * dim;
  const T* dyr = dy + row * dim;
  const RowStats s = row_stats(xr, dim, eps, scratch);
  const T* sc = scale ? scale + (row / rows_per_group) * dim : nullptr;
  const auto g_at = [&](int64_t j) {
    float g = to_f32(dyr[j]);
    if (weight) g *= to_f32(weight[j]);
    if (sc) g *= 1.0f + to_f32(sc[j]);
    return g;
  };
  float sum_g = 0.0f, sum_gx = 0.0f;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    const float g = g_at(j);
    sum_g += g;
    sum_gx += g * ((to_f32(xr[j]) - s.mean) * s.rstd);
  }
  const float mean_g = block_sum(sum_g, scratch) / static_cast<float>(dim);
  const float mean_gx = block_sum(sum_gx, scratch) / static_cast<float>(dim);
  T* o = dx + row * dim;
  for (int64_t j = threadIdx.x; j < dim; j += blockDim.x) {
    o[j] = from_f32<T>(layer_norm_dx(g_at(j), (to_f32(xr[j]) - s.mean) * s.rstd, mean_g, mean_gx, s.rstd));
  }
}

template <typename T>
__global__ void rms_norm_kernel(const T* __restrict__ x, T* __restrict__ out, const T* __restrict__ weight, int64_t dim,
                                float eps) {
  SV_SHARED(float, scratch, [32]);
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

// GroupNorm per frame, the clear path (any channel count): one block per (frame, group), strided reads.
template <typename T>
__global__ void group_norm_kernel(const T* __restrict__ x, T* __restrict__ out, const T* __restrict__ weight,
                                  const T* __restrict__ bias, int64_t pixels, int64_t channels, int64_t groups,
                                  float eps, bool silu) {
  SV_SHARED(float, scratch, [32]);
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

// GroupNorm per frame, the fast path for video-sized frames (a 544×992 frame is 540k pixels): the
// strided reads above touch each 256-byte pixel row once per group. Here three kernels read
// coalesced 16-byte vectors instead:
//   1. gn_partial: a block owns a chunk of one frame's pixels, every thread a fixed vector of channels
//      and a fixed row of pixels; per-channel sums are taken about the chunk's first pixel (the shifted
//      data algorithm: no cancellation), combined over the block and written as (mean, M2) per group;
//   2. gn_finalize: one warp per (frame, group) merges the chunks (Chan et al.) into mean and 1/std;
//   3. gn_apply: normalise, affine, optional SiLU, elementwise.
constexpr int kGnThreads = 256, kGnPixelsPerThread = 32;

template <typename T, int Vec>
struct alignas(sizeof(T) * Vec) GnPack {
  T v[Vec];
};

struct GnLayout {
  int64_t pixels, channels, groups, per_group;
  int64_t chunk_pixels, chunks;  // pixels per block and blocks per frame
  int vectors, rows;             // channel vectors per pixel (threads per pixel row), pixel rows per block
};

// Merges (count_b, mean_b, m2_b) into (count_a, mean_a, m2_a).
__device__ __forceinline__ void merge_moments(float& count_a, float& mean_a, float& m2_a, float count_b, float mean_b,
                                              float m2_b) {
  const float count = count_a + count_b;
  if (count_b == 0.0f) return;
  const float delta = mean_b - mean_a, weight_b = count_b / count;
  mean_a += delta * weight_b;
  m2_a += m2_b + delta * delta * count_a * weight_b;
  count_a = count;
}

template <typename T, int Vec>
__global__ void __launch_bounds__(kGnThreads) gn_partial_kernel(const T* __restrict__ x, float2* __restrict__ partial,
                                                                GnLayout l) {
  SV_DYNAMIC_SHARED(float, gn_shared, 16);  // sums [rows][channels], then squares [rows][channels]
  float* sums = gn_shared;
  float* squares = gn_shared + static_cast<int64_t>(l.rows) * l.channels;
  const int64_t frame = blockIdx.x / l.chunks, chunk = blockIdx.x % l.chunks;
  const int64_t first = chunk * l.chunk_pixels, count = min(l.chunk_pixels, l.pixels - first);
  const T* xf = x + (frame * l.pixels + first) * l.channels;
  const int vector = threadIdx.x % l.vectors, row = threadIdx.x / l.vectors;
  if (row < l.rows) {
    const GnPack<T, Vec> shift = *reinterpret_cast<const GnPack<T, Vec>*>(xf + vector * Vec);
    float s[Vec], q[Vec];
#pragma unroll
    for (int j = 0; j < Vec; j++) s[j] = q[j] = 0.0f;
    for (int64_t p = row; p < count; p += l.rows) {
      const GnPack<T, Vec> v = *reinterpret_cast<const GnPack<T, Vec>*>(xf + p * l.channels + vector * Vec);
#pragma unroll
      for (int j = 0; j < Vec; j++) {
        const float d = to_f32(v.v[j]) - to_f32(shift.v[j]);
        s[j] += d;
        q[j] += d * d;
      }
    }
#pragma unroll
    for (int j = 0; j < Vec; j++) {
      sums[row * l.channels + vector * Vec + j] = s[j];
      squares[row * l.channels + vector * Vec + j] = q[j];
    }
  }
  __syncthreads();
  // Channel totals over the rows, as (mean, M2) about the shift; then the channels of each group merged.
  for (int64_t c = threadIdx.x; c < l.channels; c += blockDim.x) {
    float s = 0.0f, q = 0.0f;
    for (int r = 0; r < l.rows; r++) {
      s += sums[r * l.channels + c];
      q += squares[r * l.channels + c];
    }
    const float n = static_cast<float>(count);
    sums[c] = to_f32(xf[c]) + s / n;          // row 0's slot is free again: it was read above by this thread only
    squares[c] = fmaxf(q - s * s / n, 0.0f);
  }
  __syncthreads();
  for (int64_t g = threadIdx.x; g < l.groups; g += blockDim.x) {
    const float n = static_cast<float>(count);
    float total = n, mean = sums[g * l.per_group], m2 = squares[g * l.per_group];
    for (int64_t c = 1; c < l.per_group; c++) merge_moments(total, mean, m2, n, sums[g * l.per_group + c], squares[g * l.per_group + c]);
    partial[(frame * l.chunks + chunk) * l.groups + g] = make_float2(mean, m2);
  }
}

__global__ void gn_finalize_kernel(const float2* __restrict__ partial, float2* __restrict__ stats, GnLayout l,
                                   int64_t frames, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t item = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) >> 5;  // (frame, group)
  if (item >= frames * l.groups) return;
  const int64_t frame = item / l.groups, g = item % l.groups;
  float total = 0.0f, mean = 0.0f, m2 = 0.0f;
  for (int64_t chunk = lane; chunk < l.chunks; chunk += 32) {
    const float2 p = partial[(frame * l.chunks + chunk) * l.groups + g];
    const float n = static_cast<float>(min(l.chunk_pixels, l.pixels - chunk * l.chunk_pixels) * l.per_group);
    merge_moments(total, mean, m2, n, p.x, p.y);
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float n_b = __shfl_xor_sync(0xffffffffu, total, offset);
    const float mean_b = __shfl_xor_sync(0xffffffffu, mean, offset);
    const float m2_b = __shfl_xor_sync(0xffffffffu, m2, offset);
    merge_moments(total, mean, m2, n_b, mean_b, m2_b);  // an empty side (count 0) merges as a no-op / a copy
  }
  if (lane == 0) stats[item] = make_float2(mean, rsqrtf(m2 / total + eps));
}

template <typename T, int Vec>
__global__ void gn_apply_kernel(const T* __restrict__ x, T* __restrict__ out, const T* __restrict__ weight,
                                const T* __restrict__ bias, const float2* __restrict__ stats, GnLayout l,
                                int64_t packs, bool silu) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < packs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t e = i * Vec, c0 = e % l.channels, frame = e / (l.pixels * l.channels);
    const GnPack<T, Vec> v = *reinterpret_cast<const GnPack<T, Vec>*>(x + e);
    GnPack<T, Vec> o;
#pragma unroll
    for (int j = 0; j < Vec; j++) {
      const int64_t c = c0 + j;
      const float2 st = stats[frame * l.groups + c / l.per_group];
      float y = (to_f32(v.v[j]) - st.x) * st.y * to_f32(weight[c]) + to_f32(bias[c]);
      if (silu) y = y / (1.0f + __expf(-y));
      o.v[j] = from_f32<T>(y);
    }
    *reinterpret_cast<GnPack<T, Vec>*>(out + e) = o;
  }
}

template <typename T, int Vec>
void launch_group_norm_fast(const ExecContext& ctx, const GroupNormArgs& a, int vectors) {
  GnLayout l;
  l.pixels = a.pixels;
  l.channels = a.channels;
  l.groups = a.groups;
  l.per_group = a.channels / a.groups;
  l.vectors = vectors;
  l.rows = kGnThreads / vectors;
  l.chunk_pixels = static_cast<int64_t>(l.rows) * kGnPixelsPerThread;
  l.chunks = (a.pixels + l.chunk_pixels - 1) / l.chunk_pixels;
  const int64_t partial_blocks = a.frames * l.chunks;
  SV_CHECK(partial_blocks <= 2147483647LL, "ERR_SHAPE", "group_norm: too many frames");
  const size_t partial_bytes = static_cast<size_t>(partial_blocks * l.groups) * sizeof(float2);
  const size_t stats_bytes = static_cast<size_t>(a.frames * l.groups) * sizeof(float2);
  const Scratch scratch(ctx, partial_bytes + stats_bytes);
  float2* partial = scratch.as<float2>();
  float2* stats = partial + partial_blocks * l.groups;
  cudaStream_t s = work_stream(ctx);
  const size_t shared_bytes = 2 * static_cast<size_t>(l.rows) * a.channels * sizeof(float);
  launch(SV_HERE, gn_partial_kernel<T, Vec>, static_cast<unsigned>(partial_blocks), kGnThreads, shared_bytes, s,
         a.x.as<const T>(), partial, l);
  const int64_t warps = a.frames * l.groups;
  launch(SV_HERE, gn_finalize_kernel, grid_for(warps * 32, 256, 2147483647LL), 256, 0, s, partial, stats, l, a.frames,
         a.eps);
  const int64_t packs = a.frames * a.pixels * a.channels / Vec;
  launch(SV_HERE, gn_apply_kernel<T, Vec>, grid_for(packs, 256), 256, 0, s, a.x.as<const T>(), a.out.as<T>(),
         a.weight.as<const T>(), a.bias.as<const T>(), stats, l, packs, a.silu);
}

int threads_for(int64_t dim) { return dim >= 1024 ? 512 : dim >= 256 ? 256 : 128; }

// Makes the context's device current and says whether there are rows to launch one block each
// for (at most 2^31 - 1 of them): the start of the LayerNorm and RMSNorm launchers.
bool has_rows(const ExecContext& ctx, int64_t rows, const std::string& op) {
  use_device(ctx.device);
  if (rows == 0) return false;
  SV_CHECK(rows <= 2147483647LL, "ERR_SHAPE", op + ": too many rows");
  return true;
}

// The LayerNorm kernel for rows of `dim` elements and its block size, forward and backward alike
// (each direction's register and strided kernels take the same parameters): the row held in
// registers, 1, 2 or 4 vectors per thread, where it fits and every pointer is 16-byte aligned
// (`aligned`); else the strided kernel.
template <typename T, typename Kernel>
std::pair<Kernel, int> row_kernel(int64_t dim, bool aligned, Kernel vec1, Kernel vec2, Kernel vec4, Kernel strided) {
  constexpr int E = kVecElems<T>;
  const int64_t vectors = dim / E;
  const int threads = static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, (vectors + 31) / 32 * 32)));
  const int64_t items = (vectors + threads - 1) / threads;
  if (dim % E == 0 && aligned) {
    if (items == 1) return {vec1, threads};
    if (items == 2) return {vec2, threads};
    if (items <= 4) return {vec4, threads};
  }
  return {strided, threads_for(dim)};
}

}  // namespace

void layer_norm(const ExecContext& ctx, const LayerNormArgs& a) {
  if (!has_rows(ctx, a.rows, "layer_norm")) return;
  dispatch_float(a.out.dtype, "layer_norm", [&](auto t) {
    using T = decltype(t);
    const bool aligned = aligned16(a.x) && aligned16(a.out) && aligned16(a.weight) && aligned16(a.bias) &&
                         aligned16(a.scale) && aligned16(a.shift);
    const auto [kernel, threads] = row_kernel<T>(a.dim, aligned, layer_norm_vec_kernel<T, 1>, layer_norm_vec_kernel<T, 2>,
                                                 layer_norm_vec_kernel<T, 4>, layer_norm_kernel<T>);
    launch(SV_HERE, kernel, static_cast<unsigned>(a.rows), threads, 0, work_stream(ctx), a.x.as<const T>(),
           a.out.as<T>(), ptr_or_null<T>(a.weight), ptr_or_null<T>(a.bias), ptr_or_null<T>(a.scale),
           ptr_or_null<T>(a.shift), a.dim, a.rows_per_group, a.eps);
  });
}

void layer_norm_backward(const ExecContext& ctx, const LayerNormBackwardArgs& a) {
  if (!has_rows(ctx, a.rows, "layer_norm_backward")) return;
  dispatch_float(a.dx.dtype, "layer_norm_backward", [&](auto t) {
    using T = decltype(t);
    const bool aligned =
        aligned16(a.dx) && aligned16(a.dy) && aligned16(a.x) && aligned16(a.weight) && aligned16(a.scale);
    const auto [kernel, threads] =
        row_kernel<T>(a.dim, aligned, layer_norm_backward_vec_kernel<T, 1>, layer_norm_backward_vec_kernel<T, 2>,
                      layer_norm_backward_vec_kernel<T, 4>, layer_norm_backward_kernel<T>);
    launch(SV_HERE, kernel, static_cast<unsigned>(a.rows), threads, 0, work_stream(ctx), a.dy.as<const T>(),
           a.x.as<const T>(), a.dx.as<T>(), ptr_or_null<const T>(a.weight), ptr_or_null<const T>(a.scale), a.dim,
           a.rows_per_group, a.eps);
  });
}

void rms_norm(const ExecContext& ctx, const RmsNormArgs& a) {
  if (!has_rows(ctx, a.rows, "rms_norm")) return;
  dispatch_float(a.out.dtype, "rms_norm", [&](auto t) {
    using T = decltype(t);
    launch(SV_HERE, rms_norm_kernel<T>, static_cast<unsigned>(a.rows), threads_for(a.dim), 0, work_stream(ctx),
           a.x.as<const T>(), a.out.as<T>(), ptr_or_null<T>(a.weight), a.dim, a.eps);
  });
}

void group_norm(const ExecContext& ctx, const GroupNormArgs& a) {
  use_device(ctx.device);
  const int64_t blocks = a.frames * a.groups;
  if (blocks == 0 || a.pixels == 0) return;
  SV_CHECK(blocks <= 2147483647LL, "ERR_SHAPE", "group_norm: too many frames");
  dispatch_float(a.out.dtype, "group_norm", [&](auto t) {
    using T = decltype(t);
    // Fast path: 16-byte vectors of channels, at most one block-row of threads per pixel (C <= 2048 for bf16).
    constexpr int kVec = 16 / sizeof(T);
    const bool aligned = reinterpret_cast<uintptr_t>(a.x.data) % 16 == 0 && reinterpret_cast<uintptr_t>(a.out.data) % 16 == 0;
    const int64_t vectors = a.channels / kVec;
    if (a.channels % kVec == 0 && aligned && vectors <= kGnThreads) {
      launch_group_norm_fast<T, kVec>(ctx, a, static_cast<int>(vectors));
    } else if (a.channels <= kGnThreads) {
      launch_group_norm_fast<T, 1>(ctx, a, static_cast<int>(a.channels));
    } else {
      launch(SV_HERE, group_norm_kernel<T>, static_cast<unsigned>(blocks), 512, 0, work_stream(ctx), a.x.as<const T>(),
             a.out.as<T>(), a.weight.as<const T>(), a.bias.as<const T>(), a.pixels, a.channels, a.groups, a.eps,
             a.silu);
    }
  });
}

}  // namespace sv::cuda
