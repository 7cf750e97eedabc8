// CUDA convolution (native/conv.h) as an implicit GEMM: M = output pixels (b, to, ho, wo), N = output
// channels, K = taps × input channels. Neither im2col nor padded copies exist: the A operand is gathered
// from the virtual input (padding, causal zero frames and nearest upsampling resolved per row and tap)
// while it is copied into shared memory.
//
// Kernels:
//   conv_mma_kernel   bf16/f16 tensor cores (mma.sync m16n8k16, f32 accumulate), a multi-stage cp.async
//                     pipeline (16-byte copies, zero-fill for padding), XOR-swizzled shared tiles read with
//                     ldmatrix. Needs Cin % 32 == 0 (a 32-deep K-slice never straddles two taps) and
//                     16-byte aligned x and weight. Tile shapes are chosen by Cout (128×128 down to 128×16
//                     for the 3-channel conv_out).
//   conv_wgmma_kernel Hopper (sm_90a) wgmma from swizzled shared tiles, 128×128 tiles, Cin % 64 == 0,
//                     Cout > 64; opt-in with STEPVIDEO_CONV_KERNEL=wgmma until validated on hardware.
//   conv_simt_kernel  every dtype and shape (f32; Cin = 3 or 4 in the first convs): 64×64 tiles, 4×4 outputs
//                     per thread, f32 FMA. The clear twin that the tensor-core path is checked against.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "../native/conv.h"
#include "../native/kernel_policy.h"
#include "common.cuh"
#include "ptx.cuh"

namespace sv::cuda {
namespace {

// Everything a kernel needs to map a GEMM row to its pixel and a K index to its tap. Per-pixel
// coordinates are 32-bit (the glue checks the extents), offsets into x 64-bit; the nearest
// upsampling factors are powers of two, applied as shifts.
struct ConvShape {
  int64_t M, K, batch_stride;  // GEMM sizes; elements per batch item of x
  int32_t in_t, in_h, in_w, in_ch;
  int32_t out_t, out_h, out_w, out_ch;
  int32_t virtual_t, virtual_h, virtual_w;  // input extents after nearest upsampling
  int32_t kt, kh, kw, stride_t, stride_h, stride_w, pad_front, pad_top, pad_left, up_t_shift, up_s_shift;
};

int32_t log2_of(int32_t power_of_two) {
  int32_t shift = 0;
  while ((1 << shift) < power_of_two) shift++;
  return shift;
}

ConvShape shape_of(const Conv3dArgs& a) {
  ConvShape s;
  s.M = a.gemm_m();
  s.K = a.gemm_k();
  s.batch_stride = a.in_t * a.in_h * a.in_w * a.in_ch;
  s.in_t = static_cast<int32_t>(a.in_t);
  s.in_h = static_cast<int32_t>(a.in_h);
  s.in_w = static_cast<int32_t>(a.in_w);
  s.in_ch = static_cast<int32_t>(a.in_ch);
  s.out_t = static_cast<int32_t>(a.out_t);
  s.out_h = static_cast<int32_t>(a.out_h);
  s.out_w = static_cast<int32_t>(a.out_w);
  s.out_ch = static_cast<int32_t>(a.out_ch);
  s.virtual_t = static_cast<int32_t>(a.in_t * a.up_t);
  s.virtual_h = static_cast<int32_t>(a.in_h * a.up_s);
  s.virtual_w = static_cast<int32_t>(a.in_w * a.up_s);
  s.kt = a.kt;
  s.kh = a.kh;
  s.kw = a.kw;
  s.stride_t = a.stride_t;
  s.stride_h = a.stride_h;
  s.stride_w = a.stride_w;
  s.pad_front = a.pad_front;
  s.pad_top = a.pad_top;
  s.pad_left = a.pad_left;
  s.up_t_shift = log2_of(a.up_t);
  s.up_s_shift = log2_of(a.up_s);
  return s;
}

// The virtual-input origin of one output pixel: tap (dt, dh, dw) reads virtual (t0 + dt, h0 + dh, w0 + dw).
struct RowOrigin {
  int64_t batch_offset;  // element offset of the pixel's batch item in x
  int32_t t0, h0, w0;
  bool valid;            // false past the last GEMM row
};

__device__ __forceinline__ RowOrigin row_origin(const ConvShape& s, int64_t m) {
  RowOrigin r;
  r.valid = m < s.M;
  if (!r.valid) m = 0;
  const int32_t wo = static_cast<int32_t>(m % s.out_w);
  int64_t rest = m / s.out_w;
  const int32_t ho = static_cast<int32_t>(rest % s.out_h);
  rest /= s.out_h;
  const int32_t to = static_cast<int32_t>(rest % s.out_t);
  r.batch_offset = (rest / s.out_t) * s.batch_stride;
  r.t0 = to * s.stride_t - s.pad_front;
  r.h0 = ho * s.stride_h - s.pad_top;
  r.w0 = wo * s.stride_w - s.pad_left;
  return r;
}

// Element offset in x of the channel-0 element that a tap of a row reads, or -1 for a zero (padding).
__device__ __forceinline__ int64_t tap_offset(const ConvShape& s, const RowOrigin& r, int32_t dt, int32_t dh, int32_t dw) {
  const int32_t tv = r.t0 + dt, hv = r.h0 + dh, wv = r.w0 + dw;
  if (!r.valid || tv < 0 || tv >= s.virtual_t || hv < 0 || hv >= s.virtual_h || wv < 0 || wv >= s.virtual_w) return -1;
  const int32_t pixel = ((tv >> s.up_t_shift) * s.in_h + (hv >> s.up_s_shift)) * s.in_w + (wv >> s.up_s_shift);
  return r.batch_offset + static_cast<int64_t>(pixel) * s.in_ch;
}

// The tap and first input channel of a K-slice. The pipelines load K-slices in order, so the cursor
// advances by one slice at a time (no division in the main loop); `step` divides Cin.
struct TapCursor {
  int32_t ci0 = 0, dt = 0, dh = 0, dw = 0;
  __device__ __forceinline__ void advance(const ConvShape& s, int32_t step) {
    ci0 += step;
    if (ci0 < s.in_ch) return;
    ci0 = 0;
    if (++dw < s.kw) return;
    dw = 0;
    if (++dh < s.kh) return;
    dh = 0;
    ++dt;
  }
};

// =============================================================================================
// SIMT kernel (any dtype, any shape)
// =============================================================================================

constexpr int kSimtTile = 64, kSimtK = 16, kSimtThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kSimtThreads) conv_simt_kernel(ConvShape s, const T* __restrict__ x,
                                                                  const T* __restrict__ w, const T* __restrict__ bias,
                                                                  const T* __restrict__ residual, T* __restrict__ out) {
  SV_SHARED(float, a_tile, [kSimtK][kSimtTile + 1]);
  SV_SHARED(float, b_tile, [kSimtK][kSimtTile + 1]);
  SV_SHARED(RowOrigin, rows, [kSimtTile]);
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kSimtTile, n0 = static_cast<int64_t>(blockIdx.y) * kSimtTile;
  if (threadIdx.x < kSimtTile) rows[threadIdx.x] = row_origin(s, m0 + threadIdx.x);
  __syncthreads();
  const int tm = threadIdx.x / 16, tn = threadIdx.x % 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < s.K; k0 += kSimtK) {
    for (int e = threadIdx.x; e < kSimtTile * kSimtK; e += kSimtThreads) {
      const int r = e / kSimtK, kk = e % kSimtK;  // consecutive threads: consecutive channels
      const int64_t k = k0 + kk;
      float value = 0.0f;
      if (k < s.K) {
        const int32_t k32 = static_cast<int32_t>(k), tap = k32 / s.in_ch, ci = k32 - tap * s.in_ch;  // K < 2^31 (glue)
        const int32_t dt = tap / (s.kh * s.kw), dh = (tap / s.kw) % s.kh, dw = tap % s.kw;
        const int64_t offset = tap_offset(s, rows[r], dt, dh, dw);
        if (offset >= 0) value = to_f32(x[offset + ci]);
      }
      a_tile[kk][r] = value;
    }
    for (int e = threadIdx.x; e < kSimtTile * kSimtK; e += kSimtThreads) {
      const int n = e / kSimtK, kk = e % kSimtK;
      const int64_t k = k0 + kk, gn = n0 + n;
      b_tile[kk][n] = (k < s.K && gn < s.out_ch) ? to_f32(w[gn * s.K + k]) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kSimtK; kk++) {
      float ra[4], rb[4];
#pragma unroll
      for (int i = 0; i < 4; i++) ra[i] = a_tile[kk][tm * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; j++) rb[j] = b_tile[kk][tn * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(ra[i], rb[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const int64_t m = m0 + tm * 4 + i;
    if (m >= s.M) continue;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int64_t n = n0 + tn * 4 + j;
      if (n >= s.out_ch) continue;
      const int64_t idx = m * s.out_ch + n;
      float v = acc[i][j];
      if (bias) v += to_f32(bias[n]);
      if (residual) v += to_f32(residual[idx]);
      out[idx] = from_f32<T>(v);
    }
  }
}

// =============================================================================================
// Tensor-core kernel (bf16 / f16)
// =============================================================================================

constexpr int kMmaK = 32;          // K depth of one pipeline stage: 32 halves = 64 bytes = four 16-byte chunks per row
constexpr int kChunksPerRow = kMmaK / 8;

// Shared tiles are [rows][32] halves; chunk c of row r lives at chunk c ^ ((r >> 1) & 3), which makes the
// eight 16-byte rows an ldmatrix phase reads fall into distinct bank groups (rows are 64 bytes, so rows r
// and r + 2 would collide without the swizzle).
__device__ __forceinline__ int swizzled(int row, int chunk) { return row * kMmaK + ((chunk ^ ((row >> 1) & 3)) << 3); }

template <typename T>
__device__ __forceinline__ void store_pair(T* p, float v0, float v1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v0, v1);
  } else {
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(v0, v1);
  }
}

// Epilogue shared by both tensor-core kernels: an accumulator pair for output channels n, n+1 of
// output row m, plus bias and residual, stored as a pair when aligned (the second channel only
// when it exists).
template <typename T>
__device__ __forceinline__ void store_output_pair(T* __restrict__ out, const T* __restrict__ bias,
                                                  const T* __restrict__ residual, int64_t m, int64_t n,
                                                  int64_t out_ch, float v0, float v1, bool paired_stores) {
  const int64_t idx = m * out_ch + n;
  const bool second = n + 1 < out_ch;
  if (bias) {
    v0 += to_f32(bias[n]);
    if (second) v1 += to_f32(bias[n + 1]);
  }
  if (residual) {
    v0 += to_f32(residual[idx]);
    if (second) v1 += to_f32(residual[idx + 1]);
  }
  if (paired_stores && second) {
    store_pair(out + idx, v0, v1);
  } else {
    out[idx] = from_f32<T>(v0);
    if (second) out[idx + 1] = from_f32<T>(v1);
  }
}

// BM × BN output tile per block, WarpsM × WarpsN warps each owning a (BM/WarpsM) × (BN/WarpsN) sub-tile.
template <int BM, int BN, int WarpsM, int WarpsN, int Stages>
struct MmaConfig {
  static constexpr int kThreads = 32 * WarpsM * WarpsN;
  static constexpr int kWarpM = BM / WarpsM, kWarpN = BN / WarpsN;
  static constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;
  static constexpr int kAChunks = BM * kChunksPerRow, kBChunks = BN * kChunksPerRow;
  static constexpr int kAPerThread = kAChunks / kThreads;
  static constexpr int kBPerThread = (kBChunks + kThreads - 1) / kThreads;
  static constexpr int kStageElems = (BM + BN) * kMmaK;
  static constexpr size_t kSharedBytes = static_cast<size_t>(Stages) * kStageElems * 2;
  // 512 threads per SM (two 256-thread or four 128-thread blocks, at most 128 registers a thread), so one
  // block's barrier wait hides behind another's MMAs.
  static constexpr int kMinBlocks = 512 / kThreads;
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "warp tiles are whole 16×16 ldmatrix blocks");
  static_assert(kAChunks % kThreads == 0, "every thread copies the same number of A chunks");
};

template <typename T, int BM, int BN, int WarpsM, int WarpsN, int Stages>
__global__ void __launch_bounds__(MmaConfig<BM, BN, WarpsM, WarpsN, Stages>::kThreads,
                                  MmaConfig<BM, BN, WarpsM, WarpsN, Stages>::kMinBlocks)
    conv_mma_kernel(ConvShape s, const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                    const T* __restrict__ residual, T* __restrict__ out, int64_t n_tiles, bool paired_stores) {
  using Cfg = MmaConfig<BM, BN, WarpsM, WarpsN, Stages>;
  SV_DYNAMIC_SHARED(unsigned char, shared_raw, 128);
  T* shared = reinterpret_cast<T*>(shared_raw);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t tile = blockIdx.x;
  const int64_t n0 = (tile % n_tiles) * BN, m0 = (tile / n_tiles) * BM;  // N fastest: blocks sharing A run together

  // Each thread copies the same chunk column of kAPerThread rows every stage: resolve those rows once.
  RowOrigin a_rows[Cfg::kAPerThread];
  const int a_chunk = tid % kChunksPerRow;
#pragma unroll
  for (int i = 0; i < Cfg::kAPerThread; i++) a_rows[i] = row_origin(s, m0 + (tid + i * Cfg::kThreads) / kChunksPerRow);

  TapCursor cursor;  // the next K-slice to load
  auto load_stage = [&](int stage, int64_t k_tile) {
    T* a_tile = shared + stage * Cfg::kStageElems;
    T* b_tile = a_tile + BM * kMmaK;
    const int64_t k0 = k_tile * kMmaK;
#pragma unroll
    for (int i = 0; i < Cfg::kAPerThread; i++) {
      const int row = (tid + i * Cfg::kThreads) / kChunksPerRow;
      const int64_t offset = tap_offset(s, a_rows[i], cursor.dt, cursor.dh, cursor.dw);
      const T* src = offset >= 0 ? x + offset + cursor.ci0 + a_chunk * 8 : x;
      ptx::cp_async_16(ptx::smem_u32(a_tile + swizzled(row, a_chunk)), src, offset >= 0 ? 16 : 0);
    }
#pragma unroll
    for (int i = 0; i < Cfg::kBPerThread; i++) {
      const int c = tid + i * Cfg::kThreads;
      if (c < Cfg::kBChunks) {
        const int row = c / kChunksPerRow, chunk = c % kChunksPerRow;
        const bool inside = n0 + row < s.out_ch;
        const T* src = inside ? w + (n0 + row) * s.K + k0 + chunk * 8 : w;
        ptx::cp_async_16(ptx::smem_u32(b_tile + swizzled(row, chunk)), src, inside ? 16 : 0);
      }
    }
    cursor.advance(s, kMmaK);  // Cin % 32 == 0: a K-slice never straddles two taps
  };

  float acc[Cfg::kFragsM][Cfg::kFragsN][4];
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; i++)
#pragma unroll
    for (int j = 0; j < Cfg::kFragsN; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

  const int warp_m0 = (warp / WarpsN) * Cfg::kWarpM, warp_n0 = (warp % WarpsN) * Cfg::kWarpN;
  const int64_t k_tiles = s.K / kMmaK;

#pragma unroll
  for (int stage = 0; stage < Stages - 1; stage++) {
    if (stage < k_tiles) load_stage(stage, stage);
    ptx::cp_async_commit();
  }

  for (int64_t kt = 0; kt < k_tiles; kt++) {
    ptx::cp_async_wait<Stages - 2>();  // stage kt has landed (for this thread) ...
    __syncthreads();          // ... for every thread, and everyone is done reading stage kt - 1
    const int64_t next = kt + Stages - 1;
    if (next < k_tiles) load_stage(static_cast<int>(next % Stages), next);
    ptx::cp_async_commit();

    const T* a_tile = shared + (kt % Stages) * Cfg::kStageElems;
    const T* b_tile = a_tile + BM * kMmaK;
#pragma unroll
    for (int kk = 0; kk < kMmaK / 16; kk++) {
      uint32_t a_frag[Cfg::kFragsM][4], b_frag[Cfg::kFragsN][2];
#pragma unroll
      for (int i = 0; i < Cfg::kFragsM; i++) {
        // Lanes 0-15 address rows 0-15 at k 0-7, lanes 16-31 the same rows at k 8-15: a0..a3 of m16n8k16.
        const int row = warp_m0 + i * 16 + (lane & 15);
        ptx::ldmatrix_x4(a_frag[i], ptx::smem_u32(a_tile + swizzled(row, kk * 2 + (lane >> 4))));
      }
#pragma unroll
      for (int j = 0; j < Cfg::kFragsN / 2; j++) {
        // Matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15): b0b1 / b2b3 of two n8 tiles.
        const int row = warp_n0 + j * 16 + (lane & 7) + ((lane >> 4) << 3);
        uint32_t r[4];
        ptx::ldmatrix_x4(r, ptx::smem_u32(b_tile + swizzled(row, kk * 2 + ((lane >> 3) & 1))));
        b_frag[2 * j][0] = r[0];
        b_frag[2 * j][1] = r[1];
        b_frag[2 * j + 1][0] = r[2];
        b_frag[2 * j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < Cfg::kFragsM; i++)
#pragma unroll
        for (int j = 0; j < Cfg::kFragsN; j++) ptx::mma_m16n8k16<T>(acc[i][j], a_frag[i], b_frag[j][0], b_frag[j][1]);
    }
  }
  ptx::cp_async_wait<0>();

  // Epilogue: c0,c1 are (row g, cols 2t, 2t+1) and c2,c3 (row g + 8, same cols), g = lane / 4, t = lane % 4.
#pragma unroll
  for (int i = 0; i < Cfg::kFragsM; i++) {
#pragma unroll
    for (int half = 0; half < 2; half++) {
      const int64_t m = m0 + warp_m0 + i * 16 + (lane >> 2) + half * 8;
      if (m >= s.M) continue;
#pragma unroll
      for (int j = 0; j < Cfg::kFragsN; j++) {
        const int64_t n = n0 + warp_n0 + j * 8 + (lane & 3) * 2;
        if (n >= s.out_ch) continue;
        store_output_pair(out, bias, residual, m, n, s.out_ch, acc[i][j][half * 2], acc[i][j][half * 2 + 1],
                          paired_stores);
      }
    }
  }
}

template <typename T, int BM, int BN, int WarpsM, int WarpsN, int Stages>
void launch_mma(const ExecContext& ctx, const Conv3dArgs& a, const ConvShape& s) {
  using Cfg = MmaConfig<BM, BN, WarpsM, WarpsN, Stages>;
  auto kernel = conv_mma_kernel<T, BM, BN, WarpsM, WarpsN, Stages>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(Cfg::kSharedBytes)));
  const int64_t n_tiles = (s.out_ch + BN - 1) / BN, m_tiles = (s.M + BM - 1) / BM;
  const int64_t blocks = n_tiles * m_tiles;
  SV_CHECK(blocks <= 2147483647LL, "ERR_SHAPE", "conv3d: output too large for one launch");
  // Paired (4-byte) stores need an even channel count and 4-byte aligned out / residual.
  const bool paired = s.out_ch % 2 == 0 && reinterpret_cast<uintptr_t>(a.out.data) % 4 == 0;
  launch(SV_HERE, kernel, static_cast<unsigned>(blocks), Cfg::kThreads, Cfg::kSharedBytes, work_stream(ctx), s,
         a.x.as<const T>(), a.weight.as<const T>(), a.bias.data ? a.bias.as<const T>() : nullptr,
         a.residual.data ? a.residual.as<const T>() : nullptr, a.out.as<T>(), n_tiles, paired);
}

// =============================================================================================
// Hopper tensor-core kernel (sm_90a wgmma), opt-in: STEPVIDEO_CONV_KERNEL=wgmma
// =============================================================================================
// 128×128 output tile per block of two warpgroups, each owning 64 rows (wgmma m64n128k16, both
// operands read from shared memory through descriptors). K-slices of 64 halves (one tap, Cin % 64 ==
// 0) are gathered with cp.async into the 128-byte-swizzled layout wgmma expects: row r of a tile is
// 128 bytes at r·128, its 16-byte chunk c at chunk c ^ (r % 8), 8-row atoms 1024 bytes apart, the tile
// 1024-byte aligned. Four stages; a stage is overwritten only after every warpgroup's wgmma group
// that read it has completed (wgmma.wait_group 1, then a barrier).

constexpr int kWgRows = 128, kWgCols = 128, kWgK = 64, kWgStages = 4, kWgThreads = 256;
constexpr uint32_t kWgTileBytes = kWgRows * kWgK * 2;  // 16 KiB per operand tile
constexpr size_t kWgSharedBytes = static_cast<size_t>(kWgStages) * 2 * kWgTileBytes + 1024;  // + alignment slack

#if SV_ARCH_SM90A
__device__ __forceinline__ uint32_t swizzled_128(uint32_t row, uint32_t chunk) { return row * 128 + ((chunk ^ (row & 7)) << 4); }

// Shared-memory matrix descriptor: K-major, 128-byte swizzle, 1024 bytes between 8-row atoms (the
// leading offset is unused for swizzled K-major layouts).
__device__ __forceinline__ uint64_t wgmma_descriptor(uint32_t address) { return ptx::matrix_descriptor_128b(address, 16, 1024); }
#endif

template <typename T>
__global__ void __launch_bounds__(kWgThreads, 1)
    conv_wgmma_kernel(ConvShape s, const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                      const T* __restrict__ residual, T* __restrict__ out, int64_t n_tiles, bool paired_stores) {
#if SV_ARCH_SM90A
  SV_DYNAMIC_SHARED(unsigned char, shared_raw, 128);
  const uint32_t raw = ptx::smem_u32(shared_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;  // swizzle atoms are addressed by absolute bits 7-9

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, group = warp >> 2, warp_in_group = warp & 3;
  const int64_t tile = blockIdx.x;
  const int64_t n0 = (tile % n_tiles) * kWgCols, m0 = (tile / n_tiles) * kWgRows;

  // Each thread copies chunk (tid % 8) of rows tid / 8 + 32·i, i < 4, of both operands.
  const uint32_t chunk = tid & 7;
  RowOrigin a_rows[4];
#pragma unroll
  for (int i = 0; i < 4; i++) a_rows[i] = row_origin(s, m0 + (tid >> 3) + 32 * i);

  TapCursor cursor;  // the next K-slice to load
  auto load_stage = [&](int stage, int64_t k_tile) {
    const uint32_t a_tile = base + stage * 2 * kWgTileBytes, b_tile = a_tile + kWgTileBytes;
    const int64_t k0 = k_tile * kWgK;
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const uint32_t row = (tid >> 3) + 32 * i;
      const int64_t offset = tap_offset(s, a_rows[i], cursor.dt, cursor.dh, cursor.dw);
      const T* src = offset >= 0 ? x + offset + cursor.ci0 + chunk * 8 : x;
      ptx::cp_async_16(a_tile + swizzled_128(row, chunk), src, offset >= 0 ? 16 : 0);
      const bool inside = n0 + row < s.out_ch;
      const T* wsrc = inside ? w + (n0 + row) * s.K + k0 + chunk * 8 : w;
      ptx::cp_async_16(b_tile + swizzled_128(row, chunk), wsrc, inside ? 16 : 0);
    }
    cursor.advance(s, kWgK);  // Cin % 64 == 0: a K-slice never straddles two taps
  };

  float d[64];
#pragma unroll
  for (int i = 0; i < 64; i++) d[i] = 0.0f;
  const int64_t k_tiles = s.K / kWgK;
#pragma unroll
  for (int stage = 0; stage < kWgStages - 1; stage++) {
    if (stage < k_tiles) load_stage(stage, stage);
    ptx::cp_async_commit();
  }
  for (int64_t kt = 0; kt < k_tiles; kt++) {
    ptx::cp_async_wait<kWgStages - 2>();  // this thread's copies of stage kt have landed
    ptx::fence_proxy_async();
    __syncthreads();             // everyone's have, and are visible to wgmma
    const uint32_t stage_base = base + static_cast<uint32_t>(kt % kWgStages) * 2 * kWgTileBytes;
    const uint32_t a_tile = stage_base + group * 64 * 128, b_tile = stage_base + kWgTileBytes;
    ptx::wgmma_fence();
#pragma unroll
    for (int k16 = 0; k16 < kWgK / 16; k16++)  // 16 halves = 32 bytes further along K inside the swizzled rows
      ptx::wgmma_m64n128k16_ss<T>(d, wgmma_descriptor(a_tile + k16 * 32), wgmma_descriptor(b_tile + k16 * 32), 1);
    ptx::wgmma_commit();
    ptx::wgmma_wait<1>();  // this warpgroup's group kt − 1 is done ...
    __syncthreads();  // ... and every warpgroup's: stage (kt − 1) % Stages may be overwritten
    const int64_t next = kt + kWgStages - 1;
    if (next < k_tiles) load_stage(static_cast<int>(next % kWgStages), next);
    ptx::cp_async_commit();
  }
  ptx::wgmma_wait<0>();
  ptx::cp_async_wait<0>();

  // Accumulator layout: warp q of a warpgroup owns rows 16q..16q+15; for columns 8j..8j+7,
  // d[4j], d[4j+1] are (row lane/4, cols 2·(lane%4) + 0/1) and d[4j+2], d[4j+3] the row 8 below.
#pragma unroll
  for (int half = 0; half < 2; half++) {
    const int64_t m = m0 + group * 64 + warp_in_group * 16 + (lane >> 2) + half * 8;
    if (m >= s.M) continue;
#pragma unroll
    for (int j = 0; j < 16; j++) {
      const int64_t n = n0 + j * 8 + (lane & 3) * 2;
      if (n >= s.out_ch) continue;
      store_output_pair(out, bias, residual, m, n, s.out_ch, d[4 * j + 2 * half], d[4 * j + 2 * half + 1],
                        paired_stores);
    }
  }
#else
  __trap();  // launched only on sm_90a builds and devices (see wgmma_usable)
#endif
}

template <typename T>
void launch_wgmma(const ExecContext& ctx, const Conv3dArgs& a, const ConvShape& s) {
  auto kernel = conv_wgmma_kernel<T>;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kWgSharedBytes)));
  const int64_t n_tiles = (s.out_ch + kWgCols - 1) / kWgCols, m_tiles = (s.M + kWgRows - 1) / kWgRows;
  const int64_t blocks = n_tiles * m_tiles;
  SV_CHECK(blocks <= 2147483647LL, "ERR_SHAPE", "conv3d: output too large for one launch");
  const bool paired = s.out_ch % 2 == 0 && reinterpret_cast<uintptr_t>(a.out.data) % 4 == 0;
  launch(SV_HERE, kernel, static_cast<unsigned>(blocks), kWgThreads, kWgSharedBytes, work_stream(ctx), s,
         a.x.as<const T>(), a.weight.as<const T>(), a.bias.data ? a.bias.as<const T>() : nullptr,
         a.residual.data ? a.residual.as<const T>() : nullptr, a.out.as<T>(), n_tiles, paired);
}

// The wgmma kernel needs an sm_90a build, a compute-capability 9.0 device, and is opt-in (the kernel
// policy's conv = wgmma) until it has been validated on hardware (test/gpu/conv.test.ts runs it
// against the CPU twin).
bool wgmma_usable(const ExecContext& ctx) {
#ifndef SV_CUDA_ARCHS
#define SV_CUDA_ARCHS ""
#endif
  if (ctx.policy.conv != ConvChoice::wgmma) return false;
  if (std::strstr(SV_CUDA_ARCHS, "90a") == nullptr) return false;
  int major = 0, minor = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, ctx.device));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, ctx.device));
  return major == 9 && minor == 0;
}

enum class ConvKernel { simt, wgmma_128x128, mma_128x128, mma_128x64, mma_128x32, mma_128x16 };

bool aligned_16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

ConvKernel choose_kernel(const ExecContext& ctx, const Conv3dArgs& a) {
  const bool half = a.out.dtype == DType::bf16 || a.out.dtype == DType::f16;
  if (!half || a.in_ch % kMmaK != 0 || !aligned_16(a.x.data) || !aligned_16(a.weight.data)) return ConvKernel::simt;
  if (a.out_ch > 64 && a.in_ch % kWgK == 0 && wgmma_usable(ctx)) return ConvKernel::wgmma_128x128;
  if (a.out_ch > 64) return ConvKernel::mma_128x128;
  if (a.out_ch > 32) return ConvKernel::mma_128x64;
  if (a.out_ch > 16) return ConvKernel::mma_128x32;
  return ConvKernel::mma_128x16;
}

}  // namespace

const char* conv3d_kernel_name(const ExecContext& ctx, const Conv3dArgs& a) {
  switch (choose_kernel(ctx, a)) {
    case ConvKernel::simt: return "simt";
    case ConvKernel::wgmma_128x128: return "wgmma-128x128";
    case ConvKernel::mma_128x128: return "mma-128x128";
    case ConvKernel::mma_128x64: return "mma-128x64";
    case ConvKernel::mma_128x32: return "mma-128x32";
    case ConvKernel::mma_128x16: return "mma-128x16";
  }
  return "?";
}

void conv3d(const ExecContext& ctx, const Conv3dArgs& a) {
  use_device(ctx.device);
  const ConvShape s = shape_of(a);
  if (s.M == 0 || s.out_ch == 0) return;
  const ConvKernel kernel = choose_kernel(ctx, a);
  if (kernel == ConvKernel::simt) {
    const int64_t m_tiles = (s.M + kSimtTile - 1) / kSimtTile, n_tiles = (s.out_ch + kSimtTile - 1) / kSimtTile;
    SV_CHECK(m_tiles <= 2147483647LL && n_tiles <= 65535, "ERR_SHAPE", "conv3d: output too large for one launch");
    dispatch_float(a.out.dtype, "conv3d", [&](auto t) {
      using T = decltype(t);
      launch(SV_HERE, conv_simt_kernel<T>, dim3(static_cast<unsigned>(m_tiles), static_cast<unsigned>(n_tiles)),
             kSimtThreads, 0, work_stream(ctx), s, a.x.as<const T>(), a.weight.as<const T>(),
             a.bias.data ? a.bias.as<const T>() : nullptr, a.residual.data ? a.residual.as<const T>() : nullptr,
             a.out.as<T>());
    });
    return;
  }
  auto run = [&](auto t) {
    using T = decltype(t);
    switch (kernel) {
      case ConvKernel::wgmma_128x128: launch_wgmma<T>(ctx, a, s); break;
      case ConvKernel::mma_128x128: launch_mma<T, 128, 128, 2, 4, 4>(ctx, a, s); break;
      case ConvKernel::mma_128x64: launch_mma<T, 128, 64, 4, 2, 4>(ctx, a, s); break;
      case ConvKernel::mma_128x32: launch_mma<T, 128, 32, 4, 1, 4>(ctx, a, s); break;
      case ConvKernel::mma_128x16: launch_mma<T, 128, 16, 4, 1, 4>(ctx, a, s); break;
      case ConvKernel::simt: break;
    }
  };
  if (a.out.dtype == DType::bf16) {
    run(__nv_bfloat16{});
  } else {
    run(__half{});
  }
}

}  // namespace sv::cuda
