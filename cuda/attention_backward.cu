// CUDA attention backward (native/attention.h): non-causal, no ALiBi, H == Hkv, head dim <= 128,
// f32 / bf16 / f16 storage, f32 arithmetic throughout (nothing is rounded to the storage dtype but
// the three gradients).
//
// FlashAttention-2's structure, on CUDA cores. Nothing of the forward is saved but its output O, so
// the softmax is recomputed from q and k:
//   1. attention_bwd_row_stats_kernel: per query row the log-sum-exp of its scores (log2 domain)
//      and Δ_i = dO_i·O_i, into an f32 scratch [B, H, Nq] each. One block per (b, h, 64 queries),
//      walking the visible keys 64 at a time with a running max and sum per thread.
//   2. attention_bwd_dkdv_kernel: one block per (b, h, 64 keys). K and V stay in shared memory; the
//      block walks every query tile of 32: P = exp2(s·log2e − lse), dP = dO·Vᵀ, dS = P ⊙ (dP − Δ)
//      (shared memory), then dV += Pᵀ·dO and dK += dSᵀ·Q in registers. No atomics: a key's
//      gradients are summed by the one block that owns the key.
//   3. attention_bwd_dq_kernel: one block per (b, h, 64 queries), Q and dO in shared memory,
//      walking the visible keys 32 at a time: dS as above, dQ += dS·K in registers.
// S and dP are computed twice (in 2 and in 3) so that neither dQ nor dK needs atomics or a second
// pass over an [Nq, Nk] matrix in memory.
//
// Threads: 256 per block as a 16 x 16 grid. For the products over the head dim (S, dP) a thread
// owns (tile rows / 16) x (tile cols / 16) entries spaced 16 apart; for the products into [x, D]
// accumulators it owns (x / 16) rows x (D / 16) columns, again spaced 16 apart, so that a half-warp
// reads 16 consecutive floats of a row. Tiles are stored in f32 with an odd row stride (D or D + 1),
// so the 16 different rows a half-warp reads at one column fall into 16 different banks.
//
// Expected speed: the backward does 8 [N x N x D] products (1 in the stats, 4 in dK/dV, 3 in dQ)
// against the forward's 2, on CUDA-core FMA fed from shared memory (about 0.75 shared loads per FMA:
// shared-memory bound at roughly a third of the FP32 peak, one 108-116 KB block per SM) where the
// forward's mma path runs on bf16 tensor cores. Expect it about 50-100x slower than the mma forward
// at the DiT's sizes (head dim 128): fine for tests and small fine-tuning runs, and the place to put
// a tensor-core (mma.sync) version when training at real sizes needs it.
#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <string>

#include "../native/attention.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

constexpr int kBwdThreads = 256;  // a 16 x 16 thread grid
constexpr int kGrid = 16;
constexpr int kStatsQueries = 64, kStatsKeys = 64;  // row-stats tiles
constexpr int kKvKeys = 64, kKvQueries = 32;        // dK/dV: keys per block, queries per step
constexpr int kDqQueries = 64, kDqKeys = 32;        // dQ: queries per block, keys per step
constexpr float kLog2e = 1.4426950408889634f;

struct BwdParams {
  int64_t heads, q_len, kv_len_max;
  int head_dim, ld;   // ld: the f32 row stride of the [rows, D] tiles in shared memory (odd)
  float scale, scale_log2;
};

__device__ __forceinline__ int64_t lmin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t lmax(int64_t a, int64_t b) { return a > b ? a : b; }

// Keys [0, visible) of batch item b take part.
__device__ __forceinline__ int64_t visible_keys(const int32_t* kv_len, int64_t b, int64_t n) {
  return kv_len ? lmin(n, lmax(kv_len[b], 0)) : n;
}

// Rows [0, rows) of a [rows, D] tile from global memory (row r at src + r·stride) into shared memory
// as f32 with row stride ld; rows at or past `valid` are zeros (never read from memory: keys past
// kv_len may hold anything).
template <typename T>
__device__ __forceinline__ void load_tile(float* dst, const T* src, int64_t stride, int rows, int64_t valid, int D, int ld) {
  for (int e = threadIdx.x; e < rows * D; e += kBwdThreads) {
    const int r = e / D, d = e - r * D;
    dst[r * ld + d] = r < valid ? to_f32(src[r * stride + d]) : 0.0f;
  }
}

// acc[n][m] += a[rg + 16n]·b[cg + 16m] over the head dim: kR x kC dot products of tile rows.
template <int kR, int kC>
__device__ __forceinline__ void tile_dots(const float* a, const float* b, int ld, int D, int rg, int cg,
                                          float (&acc)[kR][kC]) {
  for (int d = 0; d < D; d++) {
    float av[kR], bv[kC];
#pragma unroll
    for (int n = 0; n < kR; n++) av[n] = a[(rg + kGrid * n) * ld + d];
#pragma unroll
    for (int m = 0; m < kC; m++) bv[m] = b[(cg + kGrid * m) * ld + d];
#pragma unroll
    for (int n = 0; n < kR; n++)
#pragma unroll
      for (int m = 0; m < kC; m++) acc[n][m] += av[n] * bv[m];
  }
}

// acc[m][k] += Σ_y W(y, xg + 16m)·M[y][dg + 16k] for y < Y, W(y, x) = w[y·w_row + x·w_col]:
// a product into a [x, D] accumulator that the thread keeps in registers.
template <int kX, int kD>
__device__ __forceinline__ void tile_accumulate(const float* w, int w_row, int w_col, int Y, const float* m, int ld, int D,
                                                int xg, int dg, float (&acc)[kX][kD]) {
  for (int y = 0; y < Y; y++) {
    float wv[kX];
#pragma unroll
    for (int x = 0; x < kX; x++) wv[x] = w[y * w_row + (xg + kGrid * x) * w_col];
#pragma unroll
    for (int k = 0; k < kD; k++) {
      const int d = dg + kGrid * k;
      if (d < D) {
        const float mv = m[y * ld + d];
#pragma unroll
        for (int x = 0; x < kX; x++) acc[x][k] += wv[x] * mv;
      }
    }
  }
}

// For a tile of kRows queries x kCols keys: P = exp2(s·scale·log2e − lse) and dS = P ⊙ (dP − Δ),
// both zero outside [rows_valid, cols_valid); written to shared memory [query][key] with stride
// kCols + 1 (p_s may be null when only dS is needed).
template <int kRows, int kCols>
__device__ __forceinline__ void softmax_grad_tile(const float* q_s, const float* do_s, const float* k_s, const float* v_s,
                                                  const float* lse_s, const float* delta_s, int rows_valid, int cols_valid,
                                                  const BwdParams& p, float* p_s, float* ds_s) {
  constexpr int kR = kRows / kGrid, kC = kCols / kGrid;
  const int cg = threadIdx.x % kGrid, rg = threadIdx.x / kGrid;
  float s[kR][kC] = {}, dp[kR][kC] = {};
  tile_dots(q_s, k_s, p.ld, p.head_dim, rg, cg, s);
  tile_dots(do_s, v_s, p.ld, p.head_dim, rg, cg, dp);
#pragma unroll
  for (int n = 0; n < kR; n++) {
    const int r = rg + kGrid * n;
#pragma unroll
    for (int m = 0; m < kC; m++) {
      const int c = cg + kGrid * m;
      const float prob = r < rows_valid && c < cols_valid ? exp2f(s[n][m] * p.scale_log2 - lse_s[r]) : 0.0f;
      if (p_s) p_s[r * (kCols + 1) + c] = prob;
      ds_s[r * (kCols + 1) + c] = prob * (dp[n][m] - delta_s[r]);
    }
  }
}

// ---- 1. per query row: the log-sum-exp (log2 domain) and Δ = dO·O ----

template <typename T>
__global__ void __launch_bounds__(kBwdThreads) attention_bwd_row_stats_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                                                              const T* __restrict__ out, const T* __restrict__ d_out,
                                                                              const int32_t* __restrict__ kv_len, BwdParams p,
                                                                              float* __restrict__ lse, float* __restrict__ delta) {
  constexpr int kR = kStatsQueries / kGrid, kC = kStatsKeys / kGrid;
  SV_DYNAMIC_SHARED(float, smem, 16);
  float* q_s = smem;
  float* k_s = q_s + kStatsQueries * p.ld;
  const int64_t b = blockIdx.z, h = blockIdx.y, i0 = static_cast<int64_t>(blockIdx.x) * kStatsQueries;
  const int D = p.head_dim, cg = threadIdx.x % kGrid, rg = threadIdx.x / kGrid;
  const int64_t bh = b * p.heads + h, visible = visible_keys(kv_len, b, p.kv_len_max);
  const int rows_valid = static_cast<int>(lmin(kStatsQueries, p.q_len - i0));
  load_tile(q_s, q + (bh * p.q_len + i0) * D, D, kStatsQueries, rows_valid, D, p.ld);

  // Each thread keeps a running max and sum over its own keys of its rows; merged at the end.
  float run_max[kR], run_sum[kR];
#pragma unroll
  for (int n = 0; n < kR; n++) run_max[n] = -INFINITY, run_sum[n] = 0.0f;
  for (int64_t j0 = 0; j0 < visible; j0 += kStatsKeys) {
    const int cols_valid = static_cast<int>(lmin(kStatsKeys, visible - j0));
    __syncthreads();  // the previous key tile is no longer read
    load_tile(k_s, k + (bh * p.kv_len_max + j0) * D, D, kStatsKeys, cols_valid, D, p.ld);
    __syncthreads();
    float s[kR][kC] = {};
    tile_dots(q_s, k_s, p.ld, D, rg, cg, s);
#pragma unroll
    for (int n = 0; n < kR; n++) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int m = 0; m < kC; m++) {
        s[n][m] *= p.scale_log2;
        if (cg + kGrid * m < cols_valid) tile_max = fmaxf(tile_max, s[n][m]);
      }
      if (tile_max == -INFINITY) continue;  // none of this thread's keys in the tile is visible
      const float new_max = fmaxf(run_max[n], tile_max);
      float sum = run_sum[n] * exp2f(run_max[n] - new_max);  // exp2(-inf) = 0 on the first tile
#pragma unroll
      for (int m = 0; m < kC; m++)
        if (cg + kGrid * m < cols_valid) sum += exp2f(s[n][m] - new_max);
      run_max[n] = new_max;
      run_sum[n] = sum;
    }
  }

  const T* out_b = out + (b * p.q_len * p.heads + h) * D;  // [B, Nq, H, D]: row i at + i·H·D
  const T* d_out_b = d_out + (b * p.q_len * p.heads + h) * D;
#pragma unroll
  for (int n = 0; n < kR; n++) {
    // Merge the 16 threads of the row (lanes differing in their low 4 bits: one half-warp).
    float row_max = run_max[n];
    for (int o = kGrid / 2; o > 0; o >>= 1) row_max = fmaxf(row_max, __shfl_xor_sync(0xffffffffu, row_max, o));
    float row_sum = run_max[n] == -INFINITY ? 0.0f : run_sum[n] * exp2f(run_max[n] - row_max);
    for (int o = kGrid / 2; o > 0; o >>= 1) row_sum += __shfl_xor_sync(0xffffffffu, row_sum, o);
    const int r = rg + kGrid * n;
    const int64_t i = i0 + r;
    float dot = 0.0f;
    if (r < rows_valid)
      for (int d = cg; d < D; d += kGrid) dot += to_f32(d_out_b[i * p.heads * D + d]) * to_f32(out_b[i * p.heads * D + d]);
    for (int o = kGrid / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    if (cg == 0 && r < rows_valid) {
      // No visible key: the row takes no part in any gradient; 0 keeps the scratch finite.
      lse[bh * p.q_len + i] = row_sum > 0.0f ? row_max + log2f(row_sum) : 0.0f;
      delta[bh * p.q_len + i] = dot;
    }
  }
}

// ---- 2. dK and dV: one block per (b, h, 64 keys), walking every query ----

template <typename T, int kD>
__global__ void __launch_bounds__(kBwdThreads) attention_bwd_dkdv_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                                                         const T* __restrict__ v, const T* __restrict__ d_out,
                                                                         const int32_t* __restrict__ kv_len, BwdParams p,
                                                                         const float* __restrict__ lse,
                                                                         const float* __restrict__ delta, T* __restrict__ dk,
                                                                         T* __restrict__ dv) {
  constexpr int kX = kKvKeys / kGrid;
  constexpr int kPs = kKvQueries * (kKvKeys + 1);
  SV_DYNAMIC_SHARED(float, smem, 16);
  float* k_s = smem;
  float* v_s = k_s + kKvKeys * p.ld;
  float* q_s = v_s + kKvKeys * p.ld;
  float* do_s = q_s + kKvQueries * p.ld;
  float* p_s = do_s + kKvQueries * p.ld;
  float* ds_s = p_s + kPs;
  float* lse_s = ds_s + kPs;
  float* delta_s = lse_s + kKvQueries;
  const int64_t b = blockIdx.z, h = blockIdx.y, j0 = static_cast<int64_t>(blockIdx.x) * kKvKeys;
  const int D = p.head_dim, dg = threadIdx.x % kGrid, xg = threadIdx.x / kGrid;
  const int64_t bh = b * p.heads + h, visible = visible_keys(kv_len, b, p.kv_len_max);
  const int keys_here = static_cast<int>(lmin(kKvKeys, p.kv_len_max - j0));
  const int cols_valid = static_cast<int>(lmax(0, lmin(kKvKeys, visible - j0)));

  float acc_dk[kX][kD] = {}, acc_dv[kX][kD] = {};
  if (cols_valid > 0) {  // the whole block agrees: no barrier is skipped by part of it
    load_tile(k_s, k + (bh * p.kv_len_max + j0) * D, D, kKvKeys, cols_valid, D, p.ld);
    load_tile(v_s, v + (bh * p.kv_len_max + j0) * D, D, kKvKeys, cols_valid, D, p.ld);
    const T* d_out_b = d_out + (b * p.q_len * p.heads + h) * D;
    for (int64_t i0 = 0; i0 < p.q_len; i0 += kKvQueries) {
      const int rows_valid = static_cast<int>(lmin(kKvQueries, p.q_len - i0));
      __syncthreads();  // the previous step's products are done with q_s, do_s, p_s, ds_s
      load_tile(q_s, q + (bh * p.q_len + i0) * D, D, kKvQueries, rows_valid, D, p.ld);
      load_tile(do_s, d_out_b + i0 * p.heads * D, p.heads * D, kKvQueries, rows_valid, D, p.ld);
      for (int r = threadIdx.x; r < kKvQueries; r += kBwdThreads) {
        lse_s[r] = r < rows_valid ? lse[bh * p.q_len + i0 + r] : 0.0f;
        delta_s[r] = r < rows_valid ? delta[bh * p.q_len + i0 + r] : 0.0f;
      }
      __syncthreads();
      softmax_grad_tile<kKvQueries, kKvKeys>(q_s, do_s, k_s, v_s, lse_s, delta_s, rows_valid, cols_valid, p, p_s, ds_s);
      __syncthreads();
      // Over this step's queries: dV[c] += Σ_r P[r][c]·dO[r], dK[c] += Σ_r dS[r][c]·Q[r].
      tile_accumulate(p_s, kKvKeys + 1, 1, kKvQueries, do_s, p.ld, D, xg, dg, acc_dv);
      tile_accumulate(ds_s, kKvKeys + 1, 1, kKvQueries, q_s, p.ld, D, xg, dg, acc_dk);
    }
  }
#pragma unroll
  for (int x = 0; x < kX; x++) {
    const int c = xg + kGrid * x;
    if (c >= keys_here) continue;
    const bool live = c < cols_valid;  // masked keys: exactly zero
    T* dk_row = dk + (bh * p.kv_len_max + j0 + c) * D;
    T* dv_row = dv + (bh * p.kv_len_max + j0 + c) * D;
#pragma unroll
    for (int kk = 0; kk < kD; kk++) {
      const int d = dg + kGrid * kk;
      if (d < D) {
        dk_row[d] = from_f32<T>(live ? p.scale * acc_dk[x][kk] : 0.0f);
        dv_row[d] = from_f32<T>(live ? acc_dv[x][kk] : 0.0f);
      }
    }
  }
}

// ---- 3. dQ: one block per (b, h, 64 queries), walking the visible keys ----

template <typename T, int kD>
__global__ void __launch_bounds__(kBwdThreads) attention_bwd_dq_kernel(const T* __restrict__ q, const T* __restrict__ k,
                                                                       const T* __restrict__ v, const T* __restrict__ d_out,
                                                                       const int32_t* __restrict__ kv_len, BwdParams p,
                                                                       const float* __restrict__ lse,
                                                                       const float* __restrict__ delta, T* __restrict__ dq) {
  constexpr int kX = kDqQueries / kGrid;
  SV_DYNAMIC_SHARED(float, smem, 16);
  float* q_s = smem;
  float* do_s = q_s + kDqQueries * p.ld;
  float* k_s = do_s + kDqQueries * p.ld;
  float* v_s = k_s + kDqKeys * p.ld;
  float* ds_s = v_s + kDqKeys * p.ld;
  float* lse_s = ds_s + kDqQueries * (kDqKeys + 1);
  float* delta_s = lse_s + kDqQueries;
  const int64_t b = blockIdx.z, h = blockIdx.y, i0 = static_cast<int64_t>(blockIdx.x) * kDqQueries;
  const int D = p.head_dim, dg = threadIdx.x % kGrid, xg = threadIdx.x / kGrid;
  const int64_t bh = b * p.heads + h, visible = visible_keys(kv_len, b, p.kv_len_max);
  const int rows_valid = static_cast<int>(lmin(kDqQueries, p.q_len - i0));

  load_tile(q_s, q + (bh * p.q_len + i0) * D, D, kDqQueries, rows_valid, D, p.ld);
  load_tile(do_s, d_out + ((b * p.q_len + i0) * p.heads + h) * D, p.heads * D, kDqQueries, rows_valid, D, p.ld);
  for (int r = threadIdx.x; r < kDqQueries; r += kBwdThreads) {
    lse_s[r] = r < rows_valid ? lse[bh * p.q_len + i0 + r] : 0.0f;
    delta_s[r] = r < rows_valid ? delta[bh * p.q_len + i0 + r] : 0.0f;
  }
  float acc[kX][kD] = {};
  for (int64_t j0 = 0; j0 < visible; j0 += kDqKeys) {
    const int cols_valid = static_cast<int>(lmin(kDqKeys, visible - j0));
    __syncthreads();  // the previous step's dQ product is done with k_s and ds_s
    load_tile(k_s, k + (bh * p.kv_len_max + j0) * D, D, kDqKeys, cols_valid, D, p.ld);
    load_tile(v_s, v + (bh * p.kv_len_max + j0) * D, D, kDqKeys, cols_valid, D, p.ld);
    __syncthreads();
    softmax_grad_tile<kDqQueries, kDqKeys>(q_s, do_s, k_s, v_s, lse_s, delta_s, rows_valid, cols_valid, p, nullptr, ds_s);
    __syncthreads();
    // dQ[r] += Σ_c dS[r][c]·K[c]: W(y = c, x = r) = ds_s[r·(kDqKeys + 1) + c].
    tile_accumulate(ds_s, 1, kDqKeys + 1, kDqKeys, k_s, p.ld, D, xg, dg, acc);
  }
#pragma unroll
  for (int x = 0; x < kX; x++) {
    const int r = xg + kGrid * x;
    if (r >= rows_valid) continue;
    T* dq_row = dq + (bh * p.q_len + i0 + r) * D;
#pragma unroll
    for (int kk = 0; kk < kD; kk++) {
      const int d = dg + kGrid * kk;
      if (d < D) dq_row[d] = from_f32<T>(p.scale * acc[x][kk]);
    }
  }
}

// Shared-memory bytes of each kernel for the params' row stride.
size_t stats_smem(const BwdParams& p) { return sizeof(float) * (kStatsQueries + kStatsKeys) * p.ld; }
size_t dkdv_smem(const BwdParams& p) {
  return sizeof(float) * ((2 * kKvKeys + 2 * kKvQueries) * p.ld + 2 * kKvQueries * (kKvKeys + 1) + 2 * kKvQueries);
}
size_t dq_smem(const BwdParams& p) {
  return sizeof(float) * ((2 * kDqQueries + 2 * kDqKeys) * p.ld + kDqQueries * (kDqKeys + 1) + 2 * kDqQueries);
}

template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

template <typename T, int kD>
void launch_backward(const ExecContext& ctx, const AttentionBackwardArgs& a, const BwdParams& p) {
  const int32_t* kv_len = ptr_or_null<const int32_t>(a.kv_len);
  const auto tiles = [](int64_t n, int per) { return static_cast<unsigned>((n + per - 1) / per); };
  const dim3 heads_batch(1, static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
  // lse and Δ per (b, h, query), f32, for the two gradient kernels; freed after them in stream order.
  const int64_t rows = a.batch * a.heads * a.q_len;
  const Scratch scratch(ctx, static_cast<size_t>(2 * rows) * sizeof(float));
  float* lse = scratch.as<float>();
  float* delta = lse + rows;

  auto stats = attention_bwd_row_stats_kernel<T>;
  allow_smem(stats, stats_smem(p));
  launch(SV_HERE, stats, dim3(tiles(a.q_len, kStatsQueries), heads_batch.y, heads_batch.z), kBwdThreads, stats_smem(p),
         work_stream(ctx), a.q.as<const T>(), a.k.as<const T>(), a.out.as<const T>(), a.d_out.as<const T>(), kv_len, p, lse,
         delta);
  if (a.kv_len_max > 0) {
    auto dkdv = attention_bwd_dkdv_kernel<T, kD>;
    allow_smem(dkdv, dkdv_smem(p));
    launch(SV_HERE, dkdv, dim3(tiles(a.kv_len_max, kKvKeys), heads_batch.y, heads_batch.z), kBwdThreads, dkdv_smem(p),
           work_stream(ctx), a.q.as<const T>(), a.k.as<const T>(), a.v.as<const T>(), a.d_out.as<const T>(), kv_len, p,
           static_cast<const float*>(lse), static_cast<const float*>(delta), a.dk.as<T>(), a.dv.as<T>());
  }
  auto dq = attention_bwd_dq_kernel<T, kD>;
  allow_smem(dq, dq_smem(p));
  launch(SV_HERE, dq, dim3(tiles(a.q_len, kDqQueries), heads_batch.y, heads_batch.z), kBwdThreads, dq_smem(p), work_stream(ctx),
         a.q.as<const T>(), a.k.as<const T>(), a.v.as<const T>(), a.d_out.as<const T>(), kv_len, p,
         static_cast<const float*>(lse), static_cast<const float*>(delta), a.dq.as<T>());
}

}  // namespace

void attention_backward(const ExecContext& ctx, const AttentionBackwardArgs& a) {
  use_device(ctx.device);
  SV_CHECK(a.head_dim >= 1 && a.head_dim <= 128, "ERR_UNSUPPORTED",
           "attentionBackward: the CUDA kernel takes head dims 1 to 128, got " + std::to_string(a.head_dim));
  SV_CHECK(a.heads <= 65535 && a.batch <= 65535, "ERR_UNSUPPORTED",
           "attentionBackward: at most 65535 heads and batch items, got q " + a.q.shape_string());
  SV_CHECK(a.q_len < INT_MAX && a.kv_len_max < INT_MAX, "ERR_UNSUPPORTED",
           "attentionBackward: sequences must be shorter than 2^31, got q " + a.q.shape_string() + ", k " + a.k.shape_string());
  if (a.batch * a.heads * a.q_len == 0) {
    // No query: the key gradients are zero (nothing reached an output); no kernel is needed for dq.
    if (a.dk.numel() > 0) {
      CUDA_CHECK(cudaMemsetAsync(a.dk.data, 0, a.dk.bytes(), work_stream(ctx)));
      CUDA_CHECK(cudaMemsetAsync(a.dv.data, 0, a.dv.bytes(), work_stream(ctx)));
    }
    return;
  }
  BwdParams p{};
  p.heads = a.heads;
  p.q_len = a.q_len;
  p.kv_len_max = a.kv_len_max;
  p.head_dim = static_cast<int>(a.head_dim);
  p.ld = p.head_dim % 2 == 0 ? p.head_dim + 1 : p.head_dim;
  p.scale = a.scale;
  p.scale_log2 = a.scale * kLog2e;
  // A device that offers less shared memory per block (sm_86/89: 99 KB) is refused by name, not
  // left to a failed launch.
  const size_t smem_needed = std::max(stats_smem(p), std::max(dkdv_smem(p), dq_smem(p)));
  int smem_optin = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, ctx.device));
  SV_CHECK(smem_needed <= static_cast<size_t>(smem_optin), "ERR_UNSUPPORTED",
           "attentionBackward: head dim " + std::to_string(a.head_dim) + " needs " + std::to_string(smem_needed) +
               " bytes of shared memory per block, the device allows " + std::to_string(smem_optin));
  dispatch_float(a.q.dtype, "attentionBackward", [&](auto t) {
    using T = decltype(t);
    if (a.head_dim <= 32) {
      launch_backward<T, 2>(ctx, a, p);
    } else if (a.head_dim <= 64) {
      launch_backward<T, 4>(ctx, a, p);
    } else {
      launch_backward<T, 8>(ctx, a, p);
    }
  });
}

}  // namespace sv::cuda
