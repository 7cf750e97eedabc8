// The PTX instructions of cuda/ptx.cuh as the emulator executes them (ptx.cc, tma.cc). Shared
// memory is named by shared-window address, as in PTX; every access is checked against the block's
// declared regions. Warp-wide instructions (.sync.aligned) are collectives of the warp or warpgroup.
#pragma once
#include <cstdint>

#include "device.h"

struct CUtensorMap_st;

namespace sv::emu::ptx {

enum class Type { bf16, f16 };

// cp.async (9.7.9.25): `size` bytes to shared `dst`, of which `src_bytes` are read from `src` and
// the rest zero-filled. The destination reads as poison (0xFF) until a wait_group covers the copy.
void cp_async(uint32_t dst, const void* src, unsigned size, unsigned src_bytes, const char* file, int line);
void cp_async_commit(const char* file, int line);
void cp_async_wait(int pending, const char* file, int line);

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 (9.7.14.5.15).
void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr, bool trans, const char* file, int line);

// mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}.{bf16,f16}.f32 with D = C = d (9.7.14.5.8).
void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, Type type, const char* file, int line);

// ex2.approx.ftz.f32: 2^x, subnormal inputs and results flushed to zero.
float ex2_approx_ftz(float x);

// mbarrier (9.7.13.15): init, arrive (with expect_tx when bytes > 0), try_wait.parity. A failed
// try_wait lets the other threads run (the emulator's deadlock detection covers spin loops).
void mbarrier_init(uint32_t bar, uint32_t arrivals, const char* file, int line);
void mbarrier_arrive(uint32_t bar, uint32_t expect_bytes, const char* file, int line);
bool mbarrier_try_wait(uint32_t bar, uint32_t parity, const char* file, int line);

// cp.async.bulk.tensor.3d...mbarrier::complete_tx::bytes (9.7.9.25) from a map made by the emulated
// cuTensorMapEncodeTiled (tma.cc): lands, and completes its bytes on the barrier, when a thread next
// waits on that barrier.
void tma_load(uint32_t dst, const CUtensorMap_st* map, uint32_t bar, int c0, int c1, int c2, const char* file, int line);

// wgmma (9.7.15): fence, commit_group and wait_group are warpgroup collectives; mma_async records
// the operation (with pointers to every thread's accumulator and A registers), which runs at the
// wait_group that covers its group, reading shared memory through the descriptors then.
void wgmma_fence(const char* file, int line);
void wgmma_commit(const char* file, int line);
void wgmma_wait(int pending, const char* file, int line);
// d (+)= A·B, m64n128k16, f32 accumulate. a == nullptr: A from shared memory (desc_a); else A from
// this thread's four registers. trans_a / trans_b: the imm-trans flags (1 = MN-major).
void wgmma_m64n128k16(float (&d)[64], const uint32_t* a, uint64_t desc_a, uint64_t desc_b, bool accumulate, bool trans_a,
                      bool trans_b, Type type, const char* file, int line);

// st.shared / ld.shared of `bytes` (4, 8 or 16) at a shared-window address.
void st_shared(uint32_t addr, const void* value, unsigned bytes, const char* file, int line);
void ld_shared(uint32_t addr, void* value, unsigned bytes, const char* file, int line);

}  // namespace sv::emu::ptx
