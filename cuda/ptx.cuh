// Every inline-PTX statement of the CUDA backend, each behind a named device function with two
// bodies: the instruction for the GPU, and its emulation (cuda/emulator/ptx.cc, written from the PTX
// ISA's documented semantics and fragment layouts) for the emulated device, so the kernels run
// unchanged on both. Section numbers refer to the PTX ISA (version 9.x numbering).
//
// Also here: which instruction sets the code being compiled may use (SV_ARCH_SM80, SV_ARCH_SM90A).
// nvcc compiles kernel bodies once per target architecture, and its host pass sees none of them;
// the emulator emulates an sm_90a device and compiles every body.
#pragma once
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#if defined(SV_CUDA_EMULATED)
#include "emulator/ptx.h"
#define SV_ARCH_SM80 1
#define SV_ARCH_SM90A 1
// The call site, passed to the emulator for its reports (nothing on the GPU): SV_SITE follows other
// parameters, SV_SITE_ONLY stands alone.
#define SV_SITE , const char *sv_file = __builtin_FILE(), int sv_line = __builtin_LINE()
#define SV_SITE_ONLY const char *sv_file = __builtin_FILE(), int sv_line = __builtin_LINE()
#define SV_SITE_ARGS sv_file, sv_line
#elif defined(__CUDA_ARCH__)
#define SV_ARCH_SM80 (__CUDA_ARCH__ >= 800)
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SV_ARCH_SM90A 1
#else
#define SV_ARCH_SM90A 0
#endif
#define SV_SITE
#define SV_SITE_ONLY
#else
#define SV_ARCH_SM80 0
#define SV_ARCH_SM90A 0
#define SV_SITE
#define SV_SITE_ONLY
#endif

namespace sv::cuda::ptx {

// Generic pointer into shared memory -> 32-bit shared-window address.
__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// =============================================================================================
// sm_80: cp.async, ldmatrix, mma.sync, ex2.approx
// =============================================================================================

// 16-byte global->shared copy (9.7.9.25 cp.async): reads src_bytes (0 or 16) bytes and zero-fills
// the rest; with 0 nothing is read. Lands in shared memory by the cp_async_wait that covers its group.
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, int src_bytes SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::cp_async(dst, src, 16, static_cast<unsigned>(src_bytes), SV_SITE_ARGS);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes) : "memory");
#endif
}
// Closes the group of this thread's cp.async copies issued since the last commit.
__device__ __forceinline__ void cp_async_commit(SV_SITE_ONLY) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::cp_async_commit(SV_SITE_ARGS);
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
// Waits until at most `Pending` of this thread's committed groups are still in flight.
template <int Pending>
__device__ __forceinline__ void cp_async_wait(SV_SITE_ONLY) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::cp_async_wait(Pending, SV_SITE_ARGS);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending) : "memory");
#endif
}

// ldmatrix.sync.aligned.m8n8.x4 (9.7.14.5.15): lanes 8i..8i+7 give the row addresses of matrix i
// (16 bytes each); lane l receives r[i] = matrix i's (row l/4, columns 2(l%4), 2(l%4)+1); .trans
// delivers the transposed matrix.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::ldmatrix_x4(r, addr, false, SV_SITE_ARGS);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::ldmatrix_x4(r, addr, true, SV_SITE_ARGS);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr)
               : "memory");
#endif
}

// d += a·b for one m16n8k16 tile (9.7.14.5.8), bf16 or f16 in, f32 accumulate. With g = lane/4,
// t = lane%4: a[0..3] = A (row g, cols 2t..2t+1), (g+8, 2t..), (g, 8+2t..), (g+8, 8+2t..); b0, b1 =
// B (rows 2t..2t+1, col g), (8+2t.., g); d[0..1] = D (row g, cols 2t, 2t+1), d[2..3] = row g+8.
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1 SV_SITE) {
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "mma.sync takes bf16 or f16");
#if defined(SV_CUDA_EMULATED)
  emu::ptx::mma_m16n8k16(d, a, b0, b1, std::is_same_v<T, __nv_bfloat16> ? emu::ptx::Type::bf16 : emu::ptx::Type::f16,
                         SV_SITE_ARGS);
#else
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#endif
}

// 2^x with the special-function unit (9.7.4.8 ex2; 2 ulp, subnormals flushed); 2^-inf = +0.
__device__ __forceinline__ float exp2_approx(float x) {
#if defined(SV_CUDA_EMULATED)
  return emu::ptx::ex2_approx_ftz(x);
#else
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
#endif
}

#if SV_ARCH_SM90A
// =============================================================================================
// sm_90a: mbarrier, TMA, named barriers, setmaxnreg, proxy fences, wgmma, st/ld.shared
// =============================================================================================

// mbarrier (9.7.13.15). The default semantics of arrive / try_wait are release / acquire at CTA
// scope, which is what makes TMA-written data visible to the threads that saw the phase complete.
__device__ __forceinline__ void mbarrier_init(uint32_t bar, uint32_t arrivals SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::mbarrier_init(bar, arrivals, SV_SITE_ARGS);
#else
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(arrivals) : "memory");
#endif
}
// Makes the initialisations visible to the async proxy (TMA's complete_tx) before first use.
__device__ __forceinline__ void fence_barrier_init() {
#if !defined(SV_CUDA_EMULATED)
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void mbarrier_arrive(uint32_t bar SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::mbarrier_arrive(bar, 0, SV_SITE_ARGS);
#else
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
#endif
}
// Arrives and raises the phase's expected transaction count by `bytes` (the TMA copies that follow
// complete it): the phase ends when the arrival and all the bytes are in.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint32_t bar, uint32_t bytes SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::mbarrier_arrive(bar, bytes, SV_SITE_ARGS);
#else
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
#endif
}
// True once the phase with the given parity has completed: the current phase if it has the parity,
// else the immediately preceding one (complete by definition), 9.7.13.15.16.
__device__ __forceinline__ bool mbarrier_try_wait(uint32_t bar, uint32_t parity SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  return emu::ptx::mbarrier_try_wait(bar, parity, SV_SITE_ARGS);
#else
  uint32_t done;
  asm volatile(
      "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(done)
      : "r"(bar), "r"(parity)
      : "memory");
  return done != 0;
#endif
}
__device__ __forceinline__ uint64_t global_timer_ns() {
#if defined(SV_CUDA_EMULATED)
  return emu::global_timer_ns();
#else
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
  return t;
#endif
}

// TMA (9.7.9.25): a box of a 3-D tensor map into shared memory, completing its bytes on the
// mbarrier. Coordinates are {column, row, slab}, innermost first; out-of-bounds elements become 0.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const CUtensorMap* map, uint32_t bar, int column, int row,
                                            int slab SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::tma_load(dst, map, bar, column, row, slab, SV_SITE_ARGS);
#else
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::
          "r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(column), "r"(row), "r"(slab), "r"(bar)
      : "memory");
#endif
}
__device__ __forceinline__ void prefetch_tensor_map(const CUtensorMap* map) {
#if !defined(SV_CUDA_EMULATED)
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
#endif
}

// Register reallocation between warpgroups (9.7.19, setmaxnreg): executed by every thread of a
// warpgroup. The emulator has no register file: a no-op there.
template <int Registers>
__device__ __forceinline__ void registers_decrease() {
#if !defined(SV_CUDA_EMULATED)
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Registers));
#endif
}
template <int Registers>
__device__ __forceinline__ void registers_increase() {
#if !defined(SV_CUDA_EMULATED)
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Registers));
#endif
}

// bar.sync id, threads (9.7.13.1): a barrier among `threads` threads (whole warps); 0 is __syncthreads.
__device__ __forceinline__ void named_barrier_sync(int id, int threads SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  emu::barrier_sync(id, static_cast<unsigned>(threads), SV_SITE_ARGS);
#else
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
#endif
}
// Orders this thread's generic-proxy shared-memory writes before later async-proxy accesses
// (wgmma operand reads, TMA writes) of the same locations (9.7.13.4).
__device__ __forceinline__ void fence_proxy_async() {
#if !defined(SV_CUDA_EMULATED)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// wgmma.fence / commit_group / wait_group (9.7.15.7): the fence orders this warpgroup's register
// writes (accumulators, A fragments) before the next wgmma.mma_async reads them; a group's
// accumulators and A registers may be touched again only after a wait_group that covers it.
__device__ __forceinline__ void wgmma_fence(SV_SITE_ONLY) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::wgmma_fence(SV_SITE_ARGS);
#else
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit(SV_SITE_ONLY) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::wgmma_commit(SV_SITE_ARGS);
#else
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int Pending>
__device__ __forceinline__ void wgmma_wait(SV_SITE_ONLY) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::wgmma_wait(Pending, SV_SITE_ARGS);
#else
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
#endif
}
// Pins registers an asynchronous wgmma reads or writes: the compiler may not move other accesses
// to them across this point (it cannot see into the asynchronous instruction). Nothing to pin in
// the emulator, where the registers are memory the pending operation points into.
template <int N>
__device__ __forceinline__ void fence_operands(float (&r)[N]) {
#if !defined(SV_CUDA_EMULATED)
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i])::"memory");
#else
  (void)r;
#endif
}
template <int N>
__device__ __forceinline__ void fence_operands(uint32_t (&r)[N]) {
#if !defined(SV_CUDA_EMULATED)
#pragma unroll
  for (int i = 0; i < N; i++) asm volatile("" : "+r"(r[i])::"memory");
#else
  (void)r;
#endif
}

// Shared-memory matrix descriptor (9.7.15.5.1.2.2): bits 0-13 start address >> 4, 16-29 leading
// dimension byte offset >> 4, 32-45 stride dimension byte offset >> 4, 49-51 base offset (0: the
// swizzle pattern starts on a 1024-byte boundary), 62-63 swizzle mode (1 = 128-byte).
__device__ __forceinline__ uint64_t matrix_descriptor_128b(uint32_t start, uint32_t leading_bytes, uint32_t stride_bytes) {
  return static_cast<uint64_t>((start & 0x3FFFF) >> 4) | static_cast<uint64_t>((leading_bytes & 0x3FFFF) >> 4) << 16 |
         static_cast<uint64_t>((stride_bytes & 0x3FFFF) >> 4) << 32 | 1ull << 62;
}

#if !defined(SV_CUDA_EMULATED)
// The 64 f32 accumulators of one m64n128 tile as asm operands.
#define SV_PTX_ACC8(d, i)                                                                                        \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
      "+f"(d[i + 7])
#define SV_PTX_ACC64(d)                                                                                        \
  SV_PTX_ACC8(d, 0), SV_PTX_ACC8(d, 8), SV_PTX_ACC8(d, 16), SV_PTX_ACC8(d, 24), SV_PTX_ACC8(d, 32),           \
      SV_PTX_ACC8(d, 40), SV_PTX_ACC8(d, 48), SV_PTX_ACC8(d, 56)
#define SV_PTX_D64                                                                                             \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, "  \
  "%44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#endif

// d (+)= A·B for one warpgroup, m64n128k16, bf16 or f16 in, f32 accumulate (9.7.15.5.2), both
// operands from shared memory, both K-major (imm-trans-a = imm-trans-b = 0). scale_d = 0 ignores
// d's previous contents. Accumulator fragment (9.7.15.5.1.1.1): warp w of the warpgroup owns rows
// 16w..16w+15; lane 4g + t holds d[4c + 0..1] = (row 16w + g, cols 8c + 2t, +1), d[4c + 2..3] = the
// same columns of row 16w + g + 8.
template <typename T>
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d SV_SITE) {
  static_assert(std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>, "wgmma takes bf16 or f16 here");
#if defined(SV_CUDA_EMULATED)
  emu::ptx::wgmma_m64n128k16(d, nullptr, desc_a, desc_b, scale_d != 0, false, false,
                             std::is_same_v<T, __nv_bfloat16> ? emu::ptx::Type::bf16 : emu::ptx::Type::f16, SV_SITE_ARGS);
#else
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " SV_PTX_D64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : SV_PTX_ACC64(d)
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d));
  } else {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " SV_PTX_D64 ", %64, %65, p, 1, 1, 0, 0;\n}\n"
                 : SV_PTX_ACC64(d)
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d));
  }
#endif
}
// d += A·B, m64n128k16, bf16, A from registers (four bf16x2 registers per thread, the m64nNk16 A
// fragment: a[0] = (row g, cols 2t..2t+1), a[1] = (g + 8, 2t..), a[2] = (g, 8 + 2t..),
// a[3] = (g + 8, 8 + 2t..), rows offset by 16w, low half first), B from shared memory N-major
// (imm-trans-b = 1).
__device__ __forceinline__ void wgmma_m64n128k16_rs_bf16_b_nmajor(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b
                                                                  SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::wgmma_m64n128k16(d, a, 0, desc_b, true, false, true, emu::ptx::Type::bf16, SV_SITE_ARGS);
#else
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " SV_PTX_D64
               ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
               : SV_PTX_ACC64(d)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1));
#endif
}
#if !defined(SV_CUDA_EMULATED)
#undef SV_PTX_D64
#undef SV_PTX_ACC64
#undef SV_PTX_ACC8
#endif

// st.shared / ld.shared by shared-window address (9.7.9.9, 9.7.9.8).
__device__ __forceinline__ void st_shared_u32(uint32_t addr, uint32_t value SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  emu::ptx::st_shared(addr, &value, 4, SV_SITE_ARGS);
#else
  asm volatile("st.shared.u32 [%0], %1;\n" ::"r"(addr), "r"(value) : "memory");
#endif
}
__device__ __forceinline__ void st_shared_v4_u32(uint32_t addr, uint32_t x, uint32_t y, uint32_t z, uint32_t w SV_SITE) {
#if defined(SV_CUDA_EMULATED)
  const uint32_t value[4] = {x, y, z, w};
  emu::ptx::st_shared(addr, value, 16, SV_SITE_ARGS);
#else
  asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(x), "r"(y), "r"(z), "r"(w) : "memory");
#endif
}
__device__ __forceinline__ uint4 ld_shared_v4_u32(uint32_t addr SV_SITE) {
  uint4 v;
#if defined(SV_CUDA_EMULATED)
  emu::ptx::ld_shared(addr, &v, 16, SV_SITE_ARGS);
#else
  asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "r"(addr) : "memory");
#endif
  return v;
}
#endif  // SV_ARCH_SM90A

}  // namespace sv::cuda::ptx
