// Tensor-core attention forward (FlashAttention-2 style) for bf16/f16, included only by
// cuda/attention.cu, which owns the dispatch.
//
// One CTA computes a block of BM = 16·kWarpsM query rows of one (batch, head) against every visible
// key, walking the keys in tiles of kBlockN. Per tile:
//   S = Q·Kᵀ     mma.sync m16n8k16 (bf16/f16 in, f32 accumulators), K fragments by ldmatrix;
//   softmax      online, in registers, base 2 (logits pre-multiplied by scale·log2 e, ex2.approx);
//   O += P·V     P repacked from the S accumulators as A fragments, V fragments by ldmatrix.trans.
// K/V tiles stream through a kStages-deep cp.async ring so the next tile loads while this one
// computes. Every warp owns 16 query rows and a kHeadDim/kWarpsD slice of the head dim: for wide
// heads (256, 512) the warps of a row block split the head dim, add their partial S through
// shared memory (same order in every warp, so all slices see bit-identical probabilities), and each
// keeps only its slice of O in registers.
//
// Masks, all through the same code: keys j >= kv_len[b] are zero-filled on load and masked;
// causal rows see j <= i + (Nk - Nq), key tiles past the block's last visible key are never loaded,
// and only tiles that cross a boundary pay for per-element masking; ALiBi-sqrt adds
// -slope_h·sqrt(i + offset - j) per element. A row with no visible key ends with l = 0 and is
// written as zeros (as the CPU reference does). Output is token-major [B, Nq, H, D], staged through
// shared memory so global stores are 16-byte and coalesced.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "common.cuh"
#include "ptx.cuh"

namespace sv::cuda::mma_attention {

using ptx::cp_async_16;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::exp2_approx;
using ptx::ldmatrix_x4;
using ptx::ldmatrix_x4_trans;
using ptx::mma_m16n8k16;
using ptx::smem_u32;

struct Params {
  int heads, group, q_len, kv_len_max, offset;  // offset = Nk - Nq (causal alignment)
  float scale_log2;                             // softmax scale · log2(e)
  bool causal;
};

// Two floats as one register of two 16-bit values (lo in the low half), rounded to nearest even.
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

__device__ __forceinline__ float alibi_slope(int head, int heads) {
  int n = 1;
  while (n * 2 <= heads) n *= 2;
  if (head < n) return exp2f(-8.0f * static_cast<float>(head + 1) / static_cast<float>(n));
  return exp2f(-4.0f * static_cast<float>(2 * (head - n) + 1) / static_cast<float>(n));
}

// ---- shared-memory tiles: rows of D 16-bit values, 16-byte chunks XOR-swizzled by row so the
// 8 row addresses of one ldmatrix (same logical chunk, 8 consecutive rows) hit 8 distinct bank
// groups. Needs D >= 64 (8 chunks per row). ----

template <int D>
__device__ __forceinline__ int swizzled(int row, int col) {
  return row * D + ((((col >> 3) ^ (row & 7))) << 3) + (col & 7);
}

// Copies rows [row0, row0 + kRows) of a [rows, D] global matrix into a swizzled tile; rows at or
// past `valid_rows` are zero-filled instead of read.
template <typename T, int kRows, int D, int kThreads>
__device__ __forceinline__ void load_tile_async(T* tile, const T* __restrict__ src, int row0, int valid_rows) {
  constexpr int kChunksPerRow = D / 8;
  constexpr int kChunks = kRows * kChunksPerRow;
#pragma unroll
  for (int c = threadIdx.x; c < kChunks; c += kThreads) {
    const int row = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    const bool valid = row0 + row < valid_rows;
    const T* from = valid ? src + static_cast<int64_t>(row0 + row) * D + col : src;
    cp_async_16(smem_u32(tile + swizzled<D>(row, col)), from, valid ? 16 : 0);
  }
}

// Tile shapes of one instantiation: kWarpsM warps along the rows x kWarpsD along the head dim,
// key tiles of kBlockN, a kStages-deep K/V ring.
template <int HeadDim, int WarpsM, int WarpsD, int BlockN, int Stages>
struct Config {
  static constexpr int kHeadDim = HeadDim, kWarpsM = WarpsM, kWarpsD = WarpsD, kBlockN = BlockN, kStages = Stages;
  static constexpr int kWarps = kWarpsM * kWarpsD;
  static constexpr int kThreads = kWarps * 32;
  static constexpr int kBlockM = 16 * kWarpsM;
  static constexpr int kSliceD = kHeadDim / kWarpsD;  // head-dim columns per warp
  static constexpr int kTileElems = kBlockN * kHeadDim;
  // The Q tile's region is reused, once Q sits in registers, for the partial-S exchange and for
  // staging the output tile.
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kExchangeBytes = kWarpsD > 1 ? kWarps * (kBlockN / 8) * 4 * 32 * 4 : 0;
  static constexpr int kSmemBytes = kQBytes + kStages * 2 * kTileElems * 2;
  static_assert(kHeadDim % (16 * kWarpsD) == 0 && kSliceD % 16 == 0, "head-dim slice must be a multiple of 16");
  static_assert(kHeadDim >= 64, "the swizzle needs at least 8 chunks per row");
  static_assert(kBlockN % 16 == 0, "key tile must be a multiple of 16");
  static_assert(kExchangeBytes <= kQBytes, "partial-S exchange must fit in the Q region");
};

template <typename T, typename Cfg, bool kAlibi>
__global__ void __launch_bounds__(Cfg::kThreads, 1)
    flash_attention_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                           T* __restrict__ out, const int32_t* __restrict__ kv_len, Params p) {
#if SV_ARCH_SM80
  constexpr int D = Cfg::kHeadDim, BM = Cfg::kBlockM, BN = Cfg::kBlockN, DW = Cfg::kSliceD;
  constexpr int kWarpsM = Cfg::kWarpsM, kWarpsD = Cfg::kWarpsD, kStages = Cfg::kStages, kThreads = Cfg::kThreads;

  SV_DYNAMIC_SHARED(unsigned char, smem_raw, 128);
  T* q_tile = reinterpret_cast<T*>(smem_raw);
  T* kv_ring = reinterpret_cast<T*>(smem_raw + Cfg::kQBytes);  // stage s: K at 2s, V at 2s + 1

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int warp_m = warp % kWarpsM, warp_d = warp / kWarpsM;
  const int g = lane >> 2, t = lane & 3;  // mma fragment coordinates: row group, column pair

  // Causal blocks differ in cost; launch the longest (last) ones first.
  const int m_block = p.causal ? static_cast<int>(gridDim.x - 1 - blockIdx.x) : static_cast<int>(blockIdx.x);
  const int h = blockIdx.y, b = blockIdx.z, hk = h / p.group;
  const int m0 = m_block * BM;

  const T* q_bh = q + (static_cast<int64_t>(b) * p.heads + h) * p.q_len * D;
  const int64_t kv_base = (static_cast<int64_t>(b) * (p.heads / p.group) + hk) * p.kv_len_max * D;
  const T* k_bh = k + kv_base;
  const T* v_bh = v + kv_base;

  int visible = p.kv_len_max;
  if (kv_len != nullptr) visible = min(visible, max(kv_len[b], 0));
  int n_end = visible;  // keys [0, n_end) can matter to some row of this block
  const int last_row = min(m0 + BM, p.q_len) - 1;
  if (p.causal) n_end = min(n_end, last_row + p.offset + 1);
  const int n_tiles = n_end > 0 ? (n_end + BN - 1) / BN : 0;

  // ---- prologue: Q, then the first kStages - 1 key/value tiles ----
  load_tile_async<T, BM, D, kThreads>(q_tile, q_bh, m0, p.q_len);
  cp_async_commit();
#pragma unroll
  for (int s = 0; s < kStages - 1; s++) {
    if (s < n_tiles) {
      load_tile_async<T, BN, D, kThreads>(kv_ring + (2 * s) * Cfg::kTileElems, k_bh, s * BN, visible);
      load_tile_async<T, BN, D, kThreads>(kv_ring + (2 * s + 1) * Cfg::kTileElems, v_bh, s * BN, visible);
    }
    cp_async_commit();  // committed even when empty, so group counting stays uniform
  }
  cp_async_wait<kStages - 1>();
  __syncthreads();

  // This warp's 16 query rows, its head-dim slice, as A fragments for every 16-column step.
  uint32_t q_frag[DW / 16][4];
#pragma unroll
  for (int kk = 0; kk < DW / 16; kk++) {
    const int row = warp_m * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
    const int col = warp_d * DW + kk * 16 + (lane >> 4) * 8;
    ldmatrix_x4(q_frag[kk], smem_u32(q_tile + swizzled<D>(row, col)));
  }

  float o_acc[DW / 8][4];
#pragma unroll
  for (int i = 0; i < DW / 8; i++) o_acc[i][0] = o_acc[i][1] = o_acc[i][2] = o_acc[i][3] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};  // running max of the base-2 logits, rows g and g + 8
  float row_sum[2] = {0.0f, 0.0f};            // this thread's share of the running normaliser
  const int row0 = m0 + warp_m * 16 + g;      // the thread's rows: row0 and row0 + 8
  const float alibi_log2 = kAlibi ? alibi_slope(h, p.heads) * 1.4426950408889634f : 0.0f;

  for (int tile = 0; tile < n_tiles; tile++) {
    // Prefetch tile + kStages - 1 into the stage that tile - 1 used (released by the barrier that
    // ended the previous iteration).
    {
      const int ahead = tile + kStages - 1;
      if (ahead < n_tiles) {
        const int s = ahead % kStages;
        load_tile_async<T, BN, D, kThreads>(kv_ring + (2 * s) * Cfg::kTileElems, k_bh, ahead * BN, visible);
        load_tile_async<T, BN, D, kThreads>(kv_ring + (2 * s + 1) * Cfg::kTileElems, v_bh, ahead * BN, visible);
      }
      cp_async_commit();
    }
    cp_async_wait<kStages - 1>();  // this tile's group has landed
    __syncthreads();
    const T* k_tile = kv_ring + (2 * (tile % kStages)) * Cfg::kTileElems;
    const T* v_tile = kv_ring + (2 * (tile % kStages) + 1) * Cfg::kTileElems;
    const int n0 = tile * BN;

    // ---- S = Q·Kᵀ over this warp's head-dim slice ----
    float s_acc[BN / 8][4];
#pragma unroll
    for (int i = 0; i < BN / 8; i++) s_acc[i][0] = s_acc[i][1] = s_acc[i][2] = s_acc[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < DW / 16; kk++) {
#pragma unroll
      for (int np = 0; np < BN / 16; np++) {
        uint32_t k_frag[4];
        const int key = np * 16 + (lane & 7) + (lane >> 4) * 8;
        const int col = warp_d * DW + kk * 16 + ((lane >> 3) & 1) * 8;
        ldmatrix_x4(k_frag, smem_u32(k_tile + swizzled<D>(key, col)));
        mma_m16n8k16<T>(s_acc[2 * np], q_frag[kk], k_frag[0], k_frag[1]);
        mma_m16n8k16<T>(s_acc[2 * np + 1], q_frag[kk], k_frag[2], k_frag[3]);
      }
    }
    if constexpr (kWarpsD > 1) {
      // Add the partial products of the warps that share these rows (fixed order 0..kWarpsD-1).
      float* exchange = reinterpret_cast<float*>(smem_raw);
      constexpr int kPerWarp = (BN / 8) * 4 * 32;
#pragma unroll
      for (int i = 0; i < BN / 8; i++)
#pragma unroll
        for (int c = 0; c < 4; c++) exchange[warp * kPerWarp + (i * 4 + c) * 32 + lane] = s_acc[i][c];
      __syncthreads();
#pragma unroll
      for (int i = 0; i < BN / 8; i++)
#pragma unroll
        for (int c = 0; c < 4; c++) {
          float total = 0.0f;
#pragma unroll
          for (int wd = 0; wd < kWarpsD; wd++) total += exchange[(wd * kWarpsM + warp_m) * kPerWarp + (i * 4 + c) * 32 + lane];
          s_acc[i][c] = total;
        }
    }

    // ---- logits in base 2, masks ----
    const bool edge = n0 + BN > visible || (p.causal && n0 + BN - 1 > m0 + warp_m * 16 + p.offset);
#pragma unroll
    for (int i = 0; i < BN / 8; i++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        const int key = n0 + i * 8 + 2 * t + (c & 1);
        const int row = row0 + (c >> 1) * 8;
        float x = s_acc[i][c] * p.scale_log2;
        if (edge && (key >= visible || (p.causal && key > row + p.offset))) {
          x = -INFINITY;
        } else if constexpr (kAlibi) {
          x -= alibi_log2 * sqrtf(static_cast<float>(row + p.offset - key));
        }
        s_acc[i][c] = x;
      }

    // ---- online softmax: new running max, rescale O and the normaliser, P = 2^(x - max) ----
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int i = 0; i < BN / 8; i++) tile_max = fmaxf(tile_max, fmaxf(s_acc[i][2 * r], s_acc[i][2 * r + 1]));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      const float new_max = fmaxf(row_max[r], tile_max);
      // A row with nothing visible yet keeps max -inf; subtract 0 instead so 2^(-inf) stays 0, not NaN.
      const float ref = new_max == -INFINITY ? 0.0f : new_max;
      const float correction = exp2_approx(row_max[r] - ref);
      row_max[r] = new_max;
      float sum = 0.0f;
#pragma unroll
      for (int i = 0; i < BN / 8; i++) {
        s_acc[i][2 * r] = exp2_approx(s_acc[i][2 * r] - ref);
        s_acc[i][2 * r + 1] = exp2_approx(s_acc[i][2 * r + 1] - ref);
        sum += s_acc[i][2 * r] + s_acc[i][2 * r + 1];
      }
      row_sum[r] = row_sum[r] * correction + sum;
#pragma unroll
      for (int i = 0; i < DW / 8; i++) {
        o_acc[i][2 * r] *= correction;
        o_acc[i][2 * r + 1] *= correction;
      }
    }

    // ---- O += P·V: the S accumulators of two adjacent 8-key tiles form one 16-key A fragment ----
#pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
      uint32_t p_frag[4];
      p_frag[0] = pack2<T>(s_acc[2 * kk][0], s_acc[2 * kk][1]);
      p_frag[1] = pack2<T>(s_acc[2 * kk][2], s_acc[2 * kk][3]);
      p_frag[2] = pack2<T>(s_acc[2 * kk + 1][0], s_acc[2 * kk + 1][1]);
      p_frag[3] = pack2<T>(s_acc[2 * kk + 1][2], s_acc[2 * kk + 1][3]);
#pragma unroll
      for (int dp = 0; dp < DW / 16; dp++) {
        uint32_t v_frag[4];
        const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        const int col = warp_d * DW + dp * 16 + (lane >> 4) * 8;
        ldmatrix_x4_trans(v_frag, smem_u32(v_tile + swizzled<D>(key, col)));
        mma_m16n8k16<T>(o_acc[2 * dp], p_frag, v_frag[0], v_frag[1]);
        mma_m16n8k16<T>(o_acc[2 * dp + 1], p_frag, v_frag[2], v_frag[3]);
      }
    }
    __syncthreads();  // every warp is done with this stage (and with the exchange buffer)
  }
  cp_async_wait<0>();  // no copy may still be writing shared memory when it is reused below
  __syncthreads();     // and no warp may still be reading Q from it (n_tiles == 0 skips the loop)

  // ---- epilogue: normalise, stage the [BM, D] tile in shared memory, store 16-byte chunks ----
  T* o_tile = reinterpret_cast<T*>(smem_raw);
#pragma unroll
  for (int r = 0; r < 2; r++) {
    float total = row_sum[r];
    total += __shfl_xor_sync(0xffffffffu, total, 1);
    total += __shfl_xor_sync(0xffffffffu, total, 2);
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;  // no visible key: zeros
    const int row = warp_m * 16 + g + r * 8;
#pragma unroll
    for (int i = 0; i < DW / 8; i++) {
      const int col = warp_d * DW + i * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(o_tile + swizzled<D>(row, col)) =
          pack2<T>(o_acc[i][2 * r] * inv, o_acc[i][2 * r + 1] * inv);
    }
  }
  __syncthreads();
  constexpr int kChunksPerRow = D / 8;
#pragma unroll
  for (int c = threadIdx.x; c < BM * kChunksPerRow; c += kThreads) {
    const int row = c / kChunksPerRow, col = (c % kChunksPerRow) * 8;
    const int i = m0 + row;
    if (i < p.q_len) {
      T* dst = out + ((static_cast<int64_t>(b) * p.q_len + i) * p.heads + h) * D + col;
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(o_tile + swizzled<D>(row, col));
    }
  }
#endif
}

}  // namespace sv::cuda::mma_attention
