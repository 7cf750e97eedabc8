// Hopper (sm_90a) attention forward, FlashAttention-3 style, for the DiT's calls: bf16, head dim 128,
// non-causal, optional per-batch key-prefix lengths (kv_len, cross-attention), GQA. Included only by
// cuda/attention.cu, which owns the dispatch (opt-in with STEPVIDEO_ATTENTION=hopper until it has
// been validated on an H200; see kHopperValidated there and benchmarks/attention/NOTES.md).
//
// One CTA = 128 query rows of one (batch, head) = three warpgroups (384 threads):
//  - warpgroup 0, the producer: one thread issues TMA copies (cp.async.bulk.tensor) of the Q tile
//    and of a kStages-deep ring of K and V tiles (128 keys each). Every copy completes on an
//    mbarrier ("full"); a stage is refilled only after all eight consumer warps have arrived on its
//    "empty" mbarrier. The producer hands most of its registers to the consumers (setmaxnreg).
//  - warpgroups 1 and 2, the consumers: 64 query rows each. Per key tile:
//      S = Q·Kᵀ   wgmma.mma_async m64n128k16, Q and K read from shared memory through descriptors;
//      softmax    online, base 2, on the f32 accumulators in registers;
//      O += P·V   wgmma.mma_async m64n128k16, P from registers (bf16), V from shared memory (N-major).
// Schedules (template flags, one instantiation each, chosen at run time for the benchmark):
//  - serial:   per tile, S, then softmax, then P·V;
//  - overlap:  S(j) and P(j-1)·V(j-1) are issued together and the softmax of tile j runs while the
//              P·V product is still in the tensor cores (FlashAttention-3, intra-warpgroup overlap);
//  - pingpong: overlap, and the two consumer warpgroups take turns to issue their products (an
//              mbarrier pair), so one warpgroup's softmax runs under the other's matrix products.
//
// Layouts. Global q [B, H, Nq, 128], k/v [B, Hkv, Nk, 128] are 3-D tensor maps {128, N, B·H}: a tile
// never crosses into the next head, and rows past N are out of bounds, so TMA fills them with zeros.
// A tile of R rows x 128 columns lands as two 64-column "panels" (64 bf16 = 128 bytes per row, the
// 128-byte swizzle span): panel p holds columns 64p..64p+63 of every row, row r at byte r·128, its
// 16-byte chunk c stored at chunk c ^ (r % 8) (TMA's 128-byte swizzle on a 1024-byte-aligned box).
// That is the canonical 128-byte-swizzled layout wgmma reads: K-major for Q and K (rows = M or N,
// K = head dim), N-major for V in P·V (rows = the K dimension, keys; columns = N, the head dim).
// Output: token-major [B, Nq, H, 128] (the layout the output projection reads), staged through the
// warpgroup's own rows of the Q tile and written with 16-byte stores, rows past Nq skipped.
//
// Masks: keys at or past `visible` = min(Nk, max(kv_len[b], 0)) are -inf in S. Rows of the last
// tile past Nk are zeros from TMA; rows in [visible, Nk) are real memory (padding the caller may
// have left as anything, NaN included), so V's rows there are zeroed in shared memory before the
// last P·V (P is 0 there, but 0·NaN would not be). A row with no visible key is written as zeros.
//
// PTX ISA references (version 9.x numbering): wgmma 9.7.15 (register fragments 9.7.15.5.1.1.1,
// shared-memory layouts 9.7.15.5.1.2, strides 9.7.15.5.1.2.1, matrix descriptor 9.7.15.5.1.2.2,
// wgmma.fence / commit_group / wait_group 9.7.15.7); mbarrier 9.7.13.15 (phase completion
// 9.7.13.15.6, try_wait.parity 9.7.13.15.16); cp.async.bulk.tensor 9.7.9.25 with tensor maps 5.5;
// fence.proxy.async 9.7.13.4; setmaxnreg 9.7.19. The emulated CUDA device (cuda/emulator) runs this
// source on the CPU in CI, its PTX emulated from the same ISA sections.
#pragma once
#include <cuda.h>  // CUtensorMap (a type only: the encoder is fetched from the driver at run time)
#include <cuda_bf16.h>

#include <cstdint>

#include "common.cuh"
#include "ptx.cuh"

namespace sv::cuda::sm90_attention {

constexpr int kHeadDim = 128;
constexpr int kBlockM = 128;             // query rows per CTA: two consumer warpgroups of 64
constexpr int kBlockN = 128;             // keys per K/V tile
constexpr int kPanelCols = 64;           // 64 bf16 = 128 bytes, one row of a 128-byte swizzle atom
constexpr int kPanels = kHeadDim / kPanelCols;
constexpr int kConsumerWarpgroups = 2;
constexpr int kConsumerWarps = 4 * kConsumerWarpgroups;
constexpr int kThreads = 128 * (1 + kConsumerWarpgroups);
// setmaxnreg: 24·128 + 240·256 = 64,512 of the SM's 65,536 registers.
constexpr int kProducerRegisters = 24;
constexpr int kConsumerRegisters = 240;
// Any mbarrier wait longer than this is a protocol bug (see mbarrier_wait): legitimate waits last
// one tile's work, microseconds.
constexpr uint64_t kHangNanoseconds = 10ull * 1000 * 1000 * 1000;

static_assert(kBlockM == kBlockN, "Q, K and V tiles share one panel size");
constexpr uint32_t kPanelBytes = kBlockN * 128;              // 128 rows of 128 bytes: 16 KiB
constexpr uint32_t kTileBytes = kPanels * kPanelBytes;       // a Q, K or V tile: 32 KiB
constexpr uint32_t kWarpgroupRowBytes = 64 * 128;            // one consumer's 64 rows inside a panel

// Shared memory, from a 1024-byte-aligned base (the swizzle pattern repeats every 1024 bytes and
// both TMA and the wgmma descriptors, base offset 0, assume atoms start on that boundary).
template <int Stages>
struct SmemLayout {
  static constexpr uint32_t kQ = 0;
  static constexpr uint32_t k_tile(int stage) { return kTileBytes + 2u * kTileBytes * stage; }
  static constexpr uint32_t v_tile(int stage) { return k_tile(stage) + kTileBytes; }
  static constexpr uint32_t kBarriers = kTileBytes + 2u * kTileBytes * Stages;
  // mbarriers, 8 bytes each: full_q, full_k[S], full_v[S], empty_k[S], empty_v[S], turn[2].
  static constexpr uint32_t full_q() { return kBarriers; }
  static constexpr uint32_t full_k(int s) { return kBarriers + 8u * (1 + s); }
  static constexpr uint32_t full_v(int s) { return kBarriers + 8u * (1 + Stages + s); }
  static constexpr uint32_t empty_k(int s) { return kBarriers + 8u * (1 + 2 * Stages + s); }
  static constexpr uint32_t empty_v(int s) { return kBarriers + 8u * (1 + 3 * Stages + s); }
  static constexpr uint32_t turn(int consumer) { return kBarriers + 8u * (1 + 4 * Stages + consumer); }
  static constexpr uint32_t kBytes = kBarriers + 8u * (3 + 4 * Stages) + 1024;  // + alignment slack
};

struct Params {
  int q_len, kv_len_max, heads, group;  // group = H / Hkv
  float scale_log2;                     // softmax scale · log2(e), > 0
  const int32_t* kv_len;                // optional i32 [B]
  __nv_bfloat16* out;                   // [B, Nq, H, 128]
};

// Named barriers (bar.sync ids; 0 is __syncthreads).
constexpr int kBarrierConsumers = 1;      // both consumer warpgroups (256 threads)
constexpr int kBarrierWarpgroup0 = 2;     // + consumer index: one warpgroup (128 threads)

// What a timed-out mbarrier wait leaves behind for the host: written (first writer wins, roughly)
// to page-locked host memory mapped into the device, so it can still be read after the trap has
// made the device unusable. attention.cu turns it into the fault's message.
struct HangReport {
  uint32_t hit;                          // nonzero once written
  uint32_t block_x, block_y, block_z, thread;
  uint32_t barrier;                      // the barrier's index among the kernel's mbarriers
  uint32_t parity;
};
// Set by the host before the first launch (one per process: the pointer is the same on every device).
__device__ HangReport* hang_report;

#if SV_ARCH_SM90A

using ptx::fence_barrier_init;
using ptx::fence_operands;
using ptx::fence_proxy_async;
using ptx::mbarrier_arrive;
using ptx::mbarrier_arrive_expect_tx;
using ptx::mbarrier_init;
using ptx::named_barrier_sync;
using ptx::prefetch_tensor_map;
using ptx::registers_decrease;
using ptx::registers_increase;
using ptx::smem_u32;
using ptx::tma_load_3d;
using ptx::wgmma_commit;
using ptx::wgmma_fence;
using ptx::wgmma_wait;
using ptx::exp2_approx;

// Records which barrier a timed-out wait was on (HangReport), then traps: the launch fails with a
// message naming the barrier instead of hanging the process. Kept out of line: a trap inlined into
// the consumer region stops ptxas from giving it the registers setmaxnreg.inc asks for (the wgmma
// pipeline is then serialized).
__device__ __noinline__ void report_hang(uint32_t bar, uint32_t parity) {
  HangReport* report = hang_report;
  if (report != nullptr && report->hit == 0) {
    report->block_x = blockIdx.x;
    report->block_y = blockIdx.y;
    report->block_z = blockIdx.z;
    report->thread = threadIdx.x;
    report->barrier = (bar & 1023u) / 8u;  // the barriers sit at a 1024-byte-aligned offset
    report->parity = parity;
    __threadfence_system();
    report->hit = 1;
    __threadfence_system();
  }
  __trap();
}

// Waits for the phase of `bar` with the given parity; a wait longer than kHangNanoseconds is a
// protocol bug (report_hang). On the emulated device a hang is reported by the emulator's deadlock
// detection first.
__device__ __forceinline__ void mbarrier_wait(uint32_t bar, uint32_t parity) {
  if (ptx::mbarrier_try_wait(bar, parity)) return;
  const uint64_t start = ptx::global_timer_ns();
  while (!ptx::mbarrier_try_wait(bar, parity)) {
    if (ptx::global_timer_ns() - start > kHangNanoseconds) report_hang(bar, parity);
  }
}

// K-major, 128-byte swizzle (canonical ((8,m),(T,2k)):((8T,SBO),(1,T)), 9.7.15.5.1.2.1): 8-row
// groups `stride` = 1024 bytes apart; the leading offset is unused for swizzled K-major layouts
// ("assumed 1"). A k16 step inside the 128-byte row is +32 bytes on the start address: the hardware
// applies the swizzle to the full address, exactly as TMA did when it wrote the tile.
__device__ __forceinline__ uint64_t k_major_descriptor(uint32_t start) { return ptx::matrix_descriptor_128b(start, 16, 1024); }
// N-major (transposed B), 128-byte swizzle (canonical ((T,8,m),(8,k)):((1,T,LBO),(8T,SBO))): a
// 64-column (128-byte) block of N per atom, the next 64 columns `leading` bytes away (the next
// panel, 16 KiB), the next 8 rows of K `stride` = 1024 bytes away.
__device__ __forceinline__ uint64_t n_major_descriptor(uint32_t start) {
  return ptx::matrix_descriptor_128b(start, kPanelBytes, 1024);
}

// d (+)= A·B, m64n128k16, both operands from shared memory, both K-major. scale_d = 0 ignores d.
__device__ __forceinline__ void wgmma_ss(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  ptx::wgmma_m64n128k16_ss<__nv_bfloat16>(d, desc_a, desc_b, scale_d);
}
// d += A·B, A from registers, B from shared memory N-major.
__device__ __forceinline__ void wgmma_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b) {
  ptx::wgmma_m64n128k16_rs_bf16_b_nmajor(d, a, desc_b);
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<uint32_t*>(&v);
}

// ---- the consumer's pieces ----
//
// Accumulator fragment of m64nNk16 (9.7.15.5.1.1.1, Figure "WGMMA .m64nNk16 register fragment
// layout for accumulator matrix D"): warp w of the warpgroup owns rows 16w..16w+15; lane l = 4g + t
// holds, for each 8-column block c, d[4c + 0..1] = (row 16w + g, columns 8c + 2t + 0..1) and
// d[4c + 2..3] = (row 16w + g + 8, the same columns). The A fragment of m64nNk16 in registers
// (Figure "... layout for matrix A") is the same pattern over 16 columns: a[0] = (row g, cols 2t..2t+1),
// a[1] = (row g + 8, cols 2t..), a[2] = (row g, cols 8 + 2t..), a[3] = (row g + 8, cols 8 + 2t..),
// low half first. So for k-step kk of P·V (keys 16kk..16kk+15) the A registers are the S
// accumulators 8kk..8kk+7 taken in pairs: p[4kk + r] = (s[8kk + 2r], s[8kk + 2r + 1]), i.e.
// p[i] = (s[2i], s[2i + 1]).

// S = Q·Kᵀ for this warpgroup's 64 rows: 8 k16 steps over the head dim; step kk reads panel kk / 4
// at byte (kk % 4)·32 of every row.
__device__ __forceinline__ void qk_gemm(float (&s)[64], uint32_t q_rows, uint32_t k_tile) {
#pragma unroll
  for (int kk = 0; kk < kHeadDim / 16; kk++) {
    const uint32_t offset = (kk / 4) * kPanelBytes + (kk % 4) * 32;
    wgmma_ss(s, k_major_descriptor(q_rows + offset), k_major_descriptor(k_tile + offset), kk > 0 ? 1 : 0);
  }
}

// O += P·V: 8 k16 steps over the tile's keys; step kk starts at key 16kk, byte 16kk·128 of panel 0
// (the descriptor's leading offset reaches panel 1 for head-dim columns 64..127).
__device__ __forceinline__ void pv_gemm(float (&o)[64], const uint32_t (&p)[32], uint32_t v_tile) {
#pragma unroll
  for (int kk = 0; kk < kBlockN / 16; kk++) {
    const uint32_t a[4] = {p[4 * kk], p[4 * kk + 1], p[4 * kk + 2], p[4 * kk + 3]};
    wgmma_rs(o, a, n_major_descriptor(v_tile + kk * 16 * 128));
  }
}

// Running max and normaliser of the thread's two rows (g and g + 8), base 2.
struct OnlineSoftmax {
  float row_max[2] = {-INFINITY, -INFINITY};  // of the raw logits q·k (scale_log2 > 0 keeps the order)
  float row_sum[2] = {0.0f, 0.0f};            // this thread's share of each row's normaliser

  // s holds the tile's logits (keys n0 + 8c + 2t + e for s[4c + 2r + e]); keys >= visible are
  // masked. Replaces s by P = 2^(scale_log2·(s − max)) and returns the factor the running O must be
  // multiplied by. The row max is reduced over the 4 threads of a quad (lanes 4g..4g+3 share rows).
  __device__ __forceinline__ void update(float (&s)[64], int n0, int visible, float scale_log2, int t,
                                         float (&correction)[2]) {
    if (n0 + kBlockN > visible) {
#pragma unroll
      for (int i = 0; i < 64; i++) {
        const int key = n0 + 8 * (i / 4) + 2 * t + (i & 1);
        if (key >= visible) s[i] = -INFINITY;
      }
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
      float m = row_max[r];
#pragma unroll
      for (int c = 0; c < 16; c++) m = fmaxf(m, fmaxf(s[4 * c + 2 * r], s[4 * c + 2 * r + 1]));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 1));
      m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, 2));
      // Nothing visible yet: subtract 0 so 2^(-inf) stays 0 instead of becoming NaN.
      const float ref = m == -INFINITY ? 0.0f : m * scale_log2;
      correction[r] = exp2_approx(row_max[r] * scale_log2 - ref);
      row_max[r] = m;
      float sum = 0.0f;
#pragma unroll
      for (int c = 0; c < 16; c++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
          float& x = s[4 * c + 2 * r + e];
          x = exp2_approx(fmaf(x, scale_log2, -ref));
          sum += x;
        }
      }
      row_sum[r] = row_sum[r] * correction[r] + sum;
    }
  }
};

__device__ __forceinline__ void rescale(float (&o)[64], const float (&correction)[2]) {
#pragma unroll
  for (int i = 0; i < 64; i++) o[i] *= correction[(i >> 1) & 1];
}
__device__ __forceinline__ void pack_p(uint32_t (&p)[32], const float (&s)[64]) {
#pragma unroll
  for (int i = 0; i < 32; i++) p[i] = pack_bf16x2(s[2 * i], s[2 * i + 1]);
}

// Turn-taking of the two consumer warpgroups (pingpong schedule): turn[c] completes a phase each
// time the other warpgroup has issued a round of products; the c-th round of warpgroup c waits for
// that phase. Warpgroup 1 grants warpgroup 0 its first turn. Without pingpong both are no-ops.
template <bool kEnabled>
struct Turns {
  uint32_t mine, theirs, round = 0;
  int lane;
  __device__ __forceinline__ void take() {
    if constexpr (kEnabled) mbarrier_wait(mine, round & 1);
  }
  __device__ __forceinline__ void pass() {
    if constexpr (kEnabled) {
      if (lane == 0) mbarrier_arrive(theirs);
      round++;
    }
  }
};

// Each consumer warp tells the producer it is done with a stage (the empty barriers count 8 warps).
__device__ __forceinline__ void release(uint32_t empty_bar, int lane) {
  if (lane == 0) mbarrier_arrive(empty_bar);
}

// Zeroes V rows [first_row, kBlockN) of a tile (both panels; whole rows, so the swizzle does not
// matter) with all 256 consumer threads, then makes the zeros visible to wgmma.
__device__ __forceinline__ void zero_v_rows(uint32_t v_tile, int first_row, int consumer_thread) {
  const int chunks = (kBlockN - first_row) * (kPanels * 8);  // 16-byte chunks, 8 per panel row
  for (int i = consumer_thread; i < chunks; i += 128 * kConsumerWarpgroups) {
    const int row = first_row + i / (kPanels * 8), panel = (i / 8) % kPanels, chunk = i % 8;
    const uint32_t at = v_tile + panel * kPanelBytes + row * 128 + chunk * 16;
    ptx::st_shared_v4_u32(at, 0u, 0u, 0u, 0u);
  }
  fence_proxy_async();
  named_barrier_sync(kBarrierConsumers, 128 * kConsumerWarpgroups);
}

#endif  // SV_ARCH_SM90A

// Grid: (ceil(Nq / 128), H, B). Dynamic shared memory: SmemLayout<Stages>::kBytes.
template <int Stages, bool kOverlap, bool kPingPong>
__global__ void __launch_bounds__(kThreads, 1)
    attention_sm90_kernel(const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
                          const __grid_constant__ CUtensorMap v_map, Params p) {
#if SV_ARCH_SM90A
  static_assert(!kPingPong || kOverlap, "the pingpong schedule is built on the overlapped one");
  using L = SmemLayout<Stages>;
  SV_DYNAMIC_SHARED(unsigned char, smem_raw, 1024);
  const uint32_t base = (smem_u32(smem_raw) + 1023u) & ~1023u;

  const int m0 = blockIdx.x * kBlockM, h = blockIdx.y, b = blockIdx.z;
  const int q_slab = b * p.heads + h;                                  // tensor-map coordinate 2
  const int kv_slab = b * (p.heads / p.group) + h / p.group;
  const int visible = p.kv_len ? min(p.kv_len_max, max(p.kv_len[b], 0)) : p.kv_len_max;
  const int n_tiles = (visible + kBlockN - 1) / kBlockN;
  const int warpgroup = threadIdx.x / 128, lane = threadIdx.x % 32;

  if (threadIdx.x == 0) {
    mbarrier_init(base + L::full_q(), 1);
    for (int s = 0; s < Stages; s++) {
      mbarrier_init(base + L::full_k(s), 1);  // the producer's arrive.expect_tx (+ the bytes)
      mbarrier_init(base + L::full_v(s), 1);
      mbarrier_init(base + L::empty_k(s), kConsumerWarps);
      mbarrier_init(base + L::empty_v(s), kConsumerWarps);
    }
    mbarrier_init(base + L::turn(0), 4);  // the other warpgroup's 4 warps
    mbarrier_init(base + L::turn(1), 4);
    fence_barrier_init();
  }
  __syncthreads();

  if (warpgroup == 0) {
    // ---- producer ----
    registers_decrease<kProducerRegisters>();
    if (threadIdx.x == 0) {
      prefetch_tensor_map(&q_map);
      prefetch_tensor_map(&k_map);
      prefetch_tensor_map(&v_map);
      mbarrier_arrive_expect_tx(base + L::full_q(), kTileBytes);
      for (int panel = 0; panel < kPanels; panel++)
        tma_load_3d(base + L::kQ + panel * kPanelBytes, &q_map, base + L::full_q(), panel * kPanelCols, m0, q_slab);
      for (int tile = 0; tile < n_tiles; tile++) {
        const int stage = tile % Stages;
        // The first pass over the ring finds every stage empty: parity 1 is the phase before the
        // barrier's first, complete by definition.
        const uint32_t parity = ((tile / Stages) & 1) ^ 1;
        mbarrier_wait(base + L::empty_k(stage), parity);
        mbarrier_arrive_expect_tx(base + L::full_k(stage), kTileBytes);
        for (int panel = 0; panel < kPanels; panel++)
          tma_load_3d(base + L::k_tile(stage) + panel * kPanelBytes, &k_map, base + L::full_k(stage), panel * kPanelCols,
                      tile * kBlockN, kv_slab);
        mbarrier_wait(base + L::empty_v(stage), parity);
        mbarrier_arrive_expect_tx(base + L::full_v(stage), kTileBytes);
        for (int panel = 0; panel < kPanels; panel++)
          tma_load_3d(base + L::v_tile(stage) + panel * kPanelBytes, &v_map, base + L::full_v(stage), panel * kPanelCols,
                      tile * kBlockN, kv_slab);
      }
    }
    return;
  }

  // ---- consumers ----
  registers_increase<kConsumerRegisters>();
  const int consumer = warpgroup - 1;                       // rows 64·consumer .. +63 of the block
  const int consumer_thread = threadIdx.x - 128;            // 0..255
  const int warp = (threadIdx.x / 32) % 4, g = lane / 4, t = lane % 4;
  const uint32_t q_rows = base + L::kQ + consumer * kWarpgroupRowBytes;
  Turns<kPingPong> turns{base + L::turn(consumer), base + L::turn(1 - consumer), 0, lane};
  if constexpr (kPingPong) {
    if (consumer == 1 && lane == 0) mbarrier_arrive(base + L::turn(0));
  }

  float o[64], s[64], correction[2];
  uint32_t pf[32];
#pragma unroll
  for (int i = 0; i < 64; i++) o[i] = s[i] = 0.0f;
  OnlineSoftmax softmax;
  // Keys in [visible, Nk) of the last tile are real memory: zero them in V before the last P·V.
  const bool zero_last_v = visible < p.kv_len_max;
  auto stage_of = [](int tile) { return tile % Stages; };
  auto parity_of = [](int tile) { return static_cast<uint32_t>((tile / Stages) & 1); };

  mbarrier_wait(base + L::full_q(), 0);  // also when n_tiles == 0: the Q region is reused below
  if (n_tiles > 0) {
    if constexpr (!kOverlap) {
      for (int tile = 0; tile < n_tiles; tile++) {
        const int stage = stage_of(tile);
        mbarrier_wait(base + L::full_k(stage), parity_of(tile));
        fence_operands(s);
        wgmma_fence();
        qk_gemm(s, q_rows, base + L::k_tile(stage));
        wgmma_commit();
        wgmma_wait<0>();
        fence_operands(s);
        release(base + L::empty_k(stage), lane);
        softmax.update(s, tile * kBlockN, visible, p.scale_log2, t, correction);
        rescale(o, correction);
        pack_p(pf, s);
        mbarrier_wait(base + L::full_v(stage), parity_of(tile));
        if (tile == n_tiles - 1 && zero_last_v) zero_v_rows(base + L::v_tile(stage), visible - tile * kBlockN, consumer_thread);
        fence_operands(o);
        fence_operands(pf);
        wgmma_fence();
        pv_gemm(o, pf, base + L::v_tile(stage));
        wgmma_commit();
        wgmma_wait<0>();
        fence_operands(o);
        fence_operands(pf);
        release(base + L::empty_v(stage), lane);
      }
    } else {
      // Tile 0: S alone (O is still zero, nothing to overlap with).
      mbarrier_wait(base + L::full_k(0), 0);
      turns.take();
      wgmma_fence();
      qk_gemm(s, q_rows, base + L::k_tile(0));
      wgmma_commit();
      turns.pass();
      wgmma_wait<0>();
      fence_operands(s);
      release(base + L::empty_k(0), lane);
      softmax.update(s, 0, visible, p.scale_log2, t, correction);
      pack_p(pf, s);
      for (int tile = 1; tile < n_tiles; tile++) {
        const int stage = stage_of(tile), previous = stage_of(tile - 1);
        mbarrier_wait(base + L::full_k(stage), parity_of(tile));
        mbarrier_wait(base + L::full_v(previous), parity_of(tile - 1));
        turns.take();
        fence_operands(s);
        fence_operands(o);
        fence_operands(pf);
        wgmma_fence();
        qk_gemm(s, q_rows, base + L::k_tile(stage));  // S(tile)
        wgmma_commit();
        pv_gemm(o, pf, base + L::v_tile(previous));  // O += P(tile - 1)·V(tile - 1)
        wgmma_commit();
        turns.pass();
        wgmma_wait<1>();  // S(tile) is done; P·V may still run
        fence_operands(s);
        release(base + L::empty_k(stage), lane);
        softmax.update(s, tile * kBlockN, visible, p.scale_log2, t, correction);  // under the P·V product
        wgmma_wait<0>();
        fence_operands(o);
        fence_operands(pf);
        release(base + L::empty_v(previous), lane);
        rescale(o, correction);
        pack_p(pf, s);
      }
      const int last = n_tiles - 1;
      mbarrier_wait(base + L::full_v(stage_of(last)), parity_of(last));
      if (zero_last_v) zero_v_rows(base + L::v_tile(stage_of(last)), visible - last * kBlockN, consumer_thread);
      turns.take();
      fence_operands(o);
      fence_operands(pf);
      wgmma_fence();
      pv_gemm(o, pf, base + L::v_tile(stage_of(last)));
      wgmma_commit();
      turns.pass();
      wgmma_wait<0>();
      fence_operands(o);
      release(base + L::empty_v(stage_of(last)), lane);
    }
  }

  // ---- epilogue: normalise, stage the warpgroup's 64 x 128 tile in its own Q rows (same
  // swizzled panel layout), then 16-byte stores, token-major, rows past Nq skipped ----
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; r++) {
    float total = softmax.row_sum[r];
    total += __shfl_xor_sync(0xffffffffu, total, 1);
    total += __shfl_xor_sync(0xffffffffu, total, 2);
    inv[r] = total > 0.0f ? 1.0f / total : 0.0f;  // no visible key: zeros
  }
  // Every warp of this warpgroup is past its last wgmma (which read these Q rows).
  named_barrier_sync(kBarrierWarpgroup0 + consumer, 128);
#pragma unroll
  for (int c = 0; c < 16; c++) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
      const int row = 16 * warp + g + 8 * r;  // within the warpgroup's 64 rows
      const uint32_t at = q_rows + (c / 8) * kPanelBytes + row * 128 + (((c % 8) ^ (row % 8)) * 16) + t * 4;
      const uint32_t value = pack_bf16x2(o[4 * c + 2 * r] * inv[r], o[4 * c + 2 * r + 1] * inv[r]);
      ptx::st_shared_u32(at, value);
    }
  }
  named_barrier_sync(kBarrierWarpgroup0 + consumer, 128);
  const int local = threadIdx.x % 128;
#pragma unroll
  for (int i = local; i < 64 * 16; i += 128) {
    const int row = i / 16, c = i % 16;  // 16 chunks of 8 columns per row
    const int query = m0 + 64 * consumer + row;
    if (query < p.q_len) {
      const uint32_t at = q_rows + (c / 8) * kPanelBytes + row * 128 + (((c % 8) ^ (row % 8)) * 16);
      const uint4 chunk = ptx::ld_shared_v4_u32(at);
      __nv_bfloat16* dst = p.out + ((static_cast<int64_t>(b) * p.q_len + query) * p.heads + h) * kHeadDim + c * 8;
      *reinterpret_cast<uint4*>(dst) = chunk;
    }
  }
#else
  __trap();  // launched only from sm_90a builds on compute capability 9.0 (see hopper_unsupported_reason)
#endif
}

}  // namespace sv::cuda::sm90_attention
