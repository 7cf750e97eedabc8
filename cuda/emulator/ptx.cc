// The PTX instructions of cuda/ptx.cuh on the emulated device (see ptx.h), from the PTX ISA's
// documented semantics and fragment layouts. Warp-wide instructions are collectives (simt.h): every
// lane hands in its operands, the last to arrive computes the instruction for all of them.
#include "ptx.h"

#include <array>
#include <cmath>
#include <functional>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "../../native/dtype.h"
#include "sanitizer.h"
#include "simt.h"

namespace sv::emu {

// ---- per-block state: mbarriers, TMA copies in flight, wgmma groups ----

struct MBarrier {
  uint32_t expected = 0;
  int64_t pending = 0;   // arrivals still expected in this phase
  int64_t tx = 0;        // transaction bytes still expected in this phase
  uint64_t phase = 0;    // completed phases
  uint64_t signature = 0;
  std::vector<TmaCopy> copies;
};

struct WgmmaOp {
  std::vector<float*> d;                   // per thread of the warpgroup: its 64 accumulators
  std::vector<std::array<uint32_t, 4>> a;  // per thread: its A registers (register-sourced A)
  bool a_in_registers;
  uint64_t desc_a, desc_b;
  bool accumulate, trans_a, trans_b;
  ptx::Type type;
  const char* file;
  int line;
};

struct WarpgroupMma {
  std::vector<WgmmaOp> ops;      // issued, not yet executed
  std::vector<size_t> group_ends;
};

struct PtxBlockState {
  std::map<uint32_t, MBarrier> barriers;
  std::vector<WarpgroupMma> warpgroups;
};

void ptx_block_reset(Block& block) {
  if (!block.ptx) block.ptx = std::make_shared<PtxBlockState>();
  block.ptx->barriers.clear();
  block.ptx->warpgroups.assign((block.threads + kWarpgroupSize - 1) / kWarpgroupSize, WarpgroupMma{});
}

namespace {

std::string site_text(const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  return std::string(base ? base + 1 : file) + ":" + std::to_string(line);
}

std::string hex(uint64_t v) {
  char buffer[24];
  std::snprintf(buffer, sizeof(buffer), "0x%llx", static_cast<unsigned long long>(v));
  return buffer;
}

float half_to_f32(uint16_t bits, ptx::Type type) { return type == ptx::Type::bf16 ? bf16_to_f32(bits) : f16_to_f32(bits); }

void unpack(uint32_t packed, ptx::Type type, float* lo, float* hi) {
  *lo = half_to_f32(static_cast<uint16_t>(packed & 0xffffu), type);
  *hi = half_to_f32(static_cast<uint16_t>(packed >> 16), type);
}

}  // namespace

void ptx_thread_exit(Thread& t) {
  Block& b = this_block();
  const unsigned group = t.index / kWarpgroupSize;
  if (group < b.ptx->warpgroups.size() && !b.ptx->warpgroups[group].ops.empty() && t.index % kWarpgroupSize == 0) {
    fail_launch(describe_thread(t) + " exited with wgmma operations that no wgmma.wait_group covered");
  }
}

namespace ptx {

// =============================================================================================
// cp.async
// =============================================================================================

void cp_async(uint32_t dst, const void* src, unsigned size, unsigned src_bytes, const char* file, int line) {
  maybe_yield();
  Thread& t = this_thread();
  if (src_bytes > size) fail_launch(describe_thread(t) + ": cp.async reads " + std::to_string(src_bytes) + " of " + std::to_string(size) + " bytes");
  unsigned char* d = static_cast<unsigned char*>(shared_pointer(dst, size, size, "cp.async destination", file, line));
  if (src_bytes > 0 && reinterpret_cast<uintptr_t>(src) % size != 0) {
    fail_launch("cp.async (" + site_text(file, line) + ") by " + describe_thread(t) + ": global source " +
                    hex(reinterpret_cast<uintptr_t>(src)) + " is not " + std::to_string(size) + "-byte aligned",
                cudaErrorMisalignedAddress);
  }
  poison_shared(d, size);  // reads before the wait that covers this copy see NaN
  t.copies.push_back(AsyncCopy{d, static_cast<const unsigned char*>(src), src_bytes, size});
}

void cp_async_commit(const char*, int) {
  Thread& t = this_thread();
  t.group_ends.push_back(t.copies.size());
}

void cp_async_wait(int pending, const char*, int) {
  maybe_yield();
  Thread& t = this_thread();
  const size_t groups = t.group_ends.size();
  if (groups <= static_cast<size_t>(pending)) return;
  const size_t landed = t.group_ends[groups - pending - 1];
  for (size_t i = 0; i < landed; i++) {
    const AsyncCopy& c = t.copies[i];
    if (c.bytes > 0) std::memcpy(c.dst, c.src, c.bytes);
    if (c.size > c.bytes) std::memset(c.dst + c.bytes, 0, c.size - c.bytes);
  }
  t.copies.erase(t.copies.begin(), t.copies.begin() + static_cast<std::ptrdiff_t>(landed));
  t.group_ends.erase(t.group_ends.begin(), t.group_ends.begin() + static_cast<std::ptrdiff_t>(groups - pending));
  for (size_t& end : t.group_ends) end -= landed;
  note_progress();
}

// =============================================================================================
// ldmatrix
// =============================================================================================

namespace {

struct LdmatrixIn {
  const unsigned char* row;  // this lane's row address (already checked)
};

std::string ldmatrix_compute(LaneSlot* lanes, unsigned, const LaneMask&, const void* argument) {
  const bool trans = *static_cast<const bool*>(argument);
  uint16_t m[4][8][8];  // matrix, row, column
  for (int i = 0; i < 4; i++)
    for (int r = 0; r < 8; r++) std::memcpy(m[i][r], static_cast<const LdmatrixIn*>(lanes[8 * i + r].in)->row, 16);
  for (int lane = 0; lane < 32; lane++) {
    uint32_t* out = static_cast<uint32_t*>(lanes[lane].out);
    const int g = lane / 4, t = lane % 4;
    for (int i = 0; i < 4; i++) {
      const uint16_t lo = trans ? m[i][2 * t][g] : m[i][g][2 * t];
      const uint16_t hi = trans ? m[i][2 * t + 1][g] : m[i][g][2 * t + 1];
      out[i] = static_cast<uint32_t>(lo) | static_cast<uint32_t>(hi) << 16;
    }
  }
  return "";
}

const bool kTrans[2] = {false, true};

}  // namespace

void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr, bool trans, const char* file, int line) {
  maybe_yield();
  LdmatrixIn in{static_cast<const unsigned char*>(shared_pointer(addr, 16, 16, "ldmatrix row address", file, line))};
  collective(kWarpSize, 0xffffffffull, true, trans ? "ldmatrix.x4.trans" : "ldmatrix.x4", &in, r, &ldmatrix_compute,
             &kTrans[trans ? 1 : 0], file, line);
}

// =============================================================================================
// mma.sync m16n8k16
// =============================================================================================

namespace {

struct MmaIn {
  const uint32_t* a;
  uint32_t b0, b1;
  const float* c;
};

std::string mma_compute(LaneSlot* lanes, unsigned, const LaneMask&, const void* argument) {
  const Type type = *static_cast<const Type*>(argument);
  float A[16][16], B[16][8], C[16][8];
  for (int lane = 0; lane < 32; lane++) {
    const MmaIn& in = *static_cast<const MmaIn*>(lanes[lane].in);
    const int g = lane / 4, t = lane % 4;
    unpack(in.a[0], type, &A[g][2 * t], &A[g][2 * t + 1]);
    unpack(in.a[1], type, &A[g + 8][2 * t], &A[g + 8][2 * t + 1]);
    unpack(in.a[2], type, &A[g][8 + 2 * t], &A[g][8 + 2 * t + 1]);
    unpack(in.a[3], type, &A[g + 8][8 + 2 * t], &A[g + 8][8 + 2 * t + 1]);
    unpack(in.b0, type, &B[2 * t][g], &B[2 * t + 1][g]);
    unpack(in.b1, type, &B[8 + 2 * t][g], &B[8 + 2 * t + 1][g]);
    C[g][2 * t] = in.c[0];
    C[g][2 * t + 1] = in.c[1];
    C[g + 8][2 * t] = in.c[2];
    C[g + 8][2 * t + 1] = in.c[3];
  }
  for (int lane = 0; lane < 32; lane++) {
    float* d = static_cast<float*>(lanes[lane].out);
    const int g = lane / 4, t = lane % 4;
    for (int e = 0; e < 4; e++) {
      const int row = g + (e >> 1) * 8, col = 2 * t + (e & 1);
      // Products of 16-bit inputs are exact in f32; the sum is rounded once (the tensor core's own
      // accumulation order and truncation differ in the last bits: a GPU-only difference).
      double sum = C[row][col];
      for (int k = 0; k < 16; k++) sum += static_cast<double>(A[row][k]) * B[k][col];
      d[e] = static_cast<float>(sum);
    }
  }
  return "";
}

const Type kTypes[2] = {Type::bf16, Type::f16};

}  // namespace

void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, Type type, const char* file, int line) {
  maybe_yield();
  const float c[4] = {d[0], d[1], d[2], d[3]};
  MmaIn in{a, b0, b1, c};
  collective(kWarpSize, 0xffffffffull, true, type == Type::bf16 ? "mma.m16n8k16.bf16" : "mma.m16n8k16.f16", &in, d,
             &mma_compute, &kTypes[type == Type::bf16 ? 0 : 1], file, line);
}

float ex2_approx_ftz(float x) {
  if (std::fpclassify(x) == FP_SUBNORMAL) x = 0.0f;
  const float y = std::exp2(x);
  return std::fpclassify(y) == FP_SUBNORMAL ? 0.0f : y;
}

// =============================================================================================
// mbarrier
// =============================================================================================

namespace {

constexpr uint64_t kSignature = 0x5356454d55424152ull;  // written into the barrier's 8 bytes at init

MBarrier& barrier_at(uint32_t bar, const char* what, const char* file, int line) {
  uint64_t* word = static_cast<uint64_t*>(shared_pointer(bar, 8, 8, what, file, line));
  Block& b = this_block();
  auto it = b.ptx->barriers.find(bar);
  if (it == b.ptx->barriers.end()) {
    fail_launch(std::string(what) + " (" + site_text(file, line) + ") by " + describe_thread(this_thread()) +
                " on shared " + hex(bar) + ", which no mbarrier.init has initialised");
  }
  if (*word != it->second.signature) {
    fail_launch(std::string(what) + " (" + site_text(file, line) + ") by " + describe_thread(this_thread()) +
                ": the mbarrier at shared " + hex(bar) + " was overwritten by a store since its init");
  }
  return it->second;
}

void complete_phase_if_done(MBarrier& m) {
  if (m.pending == 0 && m.tx == 0) {
    m.phase++;
    m.pending = m.expected;
    note_progress();
  }
}

}  // namespace

void mbarrier_init(uint32_t bar, uint32_t arrivals, const char* file, int line) {
  uint64_t* word = static_cast<uint64_t*>(shared_pointer(bar, 8, 8, "mbarrier.init", file, line));
  if (arrivals == 0 || arrivals > (1u << 20) - 1) {
    fail_launch("mbarrier.init (" + site_text(file, line) + ") with " + std::to_string(arrivals) + " arrivals (1 to 2^20 - 1)");
  }
  MBarrier& m = this_block().ptx->barriers[bar];
  m = MBarrier{};
  m.expected = arrivals;
  m.pending = arrivals;
  m.signature = kSignature ^ bar;
  *word = m.signature;
  note_progress();
}

void mbarrier_arrive(uint32_t bar, uint32_t expect_bytes, const char* file, int line) {
  maybe_yield();
  MBarrier& m = barrier_at(bar, expect_bytes ? "mbarrier.arrive.expect_tx" : "mbarrier.arrive", file, line);
  SV_TSAN_RELEASE(&m);  // arrive has release semantics
  m.tx += expect_bytes;
  if (m.pending == 0) {
    fail_launch("mbarrier.arrive (" + site_text(file, line) + ") by " + describe_thread(this_thread()) + " on shared " + hex(bar) +
                ": more arrivals than the phase expects (" + std::to_string(m.expected) + ")");
  }
  m.pending--;
  complete_phase_if_done(m);
}

bool mbarrier_try_wait(uint32_t bar, uint32_t parity, const char* file, int line) {
  maybe_yield();
  MBarrier& m = barrier_at(bar, "mbarrier.try_wait.parity", file, line);
  // TMA copies complete on the barrier when someone looks: until then their boxes read as poison.
  if (!m.copies.empty()) {
    std::vector<TmaCopy> copies;
    copies.swap(m.copies);
    for (TmaCopy& c : copies) {
      c.land();
      m.tx -= c.size;  // may dip below zero until the expect_tx arrives, as on the GPU
    }
    complete_phase_if_done(m);
  }
  // The phase with this parity is complete when the current (incomplete) phase has the other one.
  if ((m.phase & 1u) != (parity & 1u)) {
    SV_TSAN_ACQUIRE(&m);  // a successful try_wait has acquire semantics
    return true;
  }
  spin_yield(WaitSite{"mbarrier.try_wait.parity", file, line, static_cast<int64_t>(bar), static_cast<int64_t>(parity)});
  return false;
}

void add_tma_copy(uint32_t bar, TmaCopy copy, const char* file, int line) {
  MBarrier& m = barrier_at(bar, "cp.async.bulk.tensor completion mbarrier", file, line);
  m.copies.push_back(std::move(copy));
}

// =============================================================================================
// wgmma
// =============================================================================================

namespace {

struct WgmmaIn {
  float* d;
  std::array<uint32_t, 4> a;
  uint64_t desc_a, desc_b;
  bool accumulate;
};

struct WgmmaArgument {
  const char* file;
  int line;
  uint64_t desc_a, desc_b;
  bool a_in_registers, accumulate, trans_a, trans_b;
  Type type;
};

// Byte address of element (mn, k) of an operand in shared memory, from its matrix descriptor
// (9.7.15.5.1.2): the canonical layouts, then the swizzle on the address bits.
//   K-major, swizzle W bytes:  (mn % 8)·W + (mn / 8)·SBO + k·2          (k·2 < W; LBO unused)
//   MN-major, swizzle W bytes: (mn % (W/2))·2 + (mn / (W/2))·LBO + (k % 8)·W + (k / 8)·SBO
//   no swizzle, K-major:       (mn % 8)·16 + (mn / 8)·SBO + (k % 8)·2 + (k / 8)·LBO
// Swizzle of W bytes: address bits [4, 4 + log2(W/16)) ^= bits [7, 7 + log2(W/16)).
struct Descriptor {
  uint32_t start, lbo, sbo, width;  // width: swizzle span in bytes (16 = none)
  bool mn_major;
};

std::string decode(uint64_t desc, bool mn_major, Descriptor* out) {
  out->start = static_cast<uint32_t>(desc & 0x3FFF) << 4;
  out->lbo = static_cast<uint32_t>((desc >> 16) & 0x3FFF) << 4;
  out->sbo = static_cast<uint32_t>((desc >> 32) & 0x3FFF) << 4;
  const unsigned base_offset = static_cast<unsigned>((desc >> 49) & 7);
  const unsigned layout = static_cast<unsigned>(desc >> 62);
  out->width = layout == 1 ? 128 : layout == 2 ? 64 : layout == 3 ? 32 : 16;
  out->mn_major = mn_major;
  if (base_offset != 0) return "matrix descriptor " + hex(desc) + " has a base offset, which the emulator does not support";
  if (mn_major && out->width == 16) return "an MN-major operand without swizzle is not emulated";
  return "";
}

uint32_t element_address(const Descriptor& d, unsigned mn, unsigned k) {
  uint32_t address;
  if (!d.mn_major) {
    if (d.width == 16) {
      address = d.start + (mn % 8) * 16 + (mn / 8) * d.sbo + (k % 8) * 2 + (k / 8) * d.lbo;
    } else {
      address = d.start + (mn % 8) * d.width + (mn / 8) * d.sbo + k * 2;
    }
  } else {
    const unsigned per_row = d.width / 2;
    address = d.start + (mn % per_row) * 2 + (mn / per_row) * d.lbo + (k % 8) * d.width + (k / 8) * d.sbo;
  }
  if (d.width > 16) {
    const uint32_t mask = d.width / 16 - 1;
    address ^= ((address >> 7) & mask) << 4;
  }
  return address;
}

// Reads an M x 16 (A) or N x 16 (B) operand; fails the launch on an access outside shared memory.
std::string read_operand(const Descriptor& d, unsigned rows, Type type, float (*out)[16], const char* what, const char* file,
                         int line) {
  for (unsigned mn = 0; mn < rows; mn++) {
    for (unsigned k = 0; k < 16; k++) {
      const uint32_t address = element_address(d, mn, k);
      const uint16_t* p = static_cast<const uint16_t*>(shared_pointer(address, 2, 2, what, file, line));
      out[mn][k] = half_to_f32(*p, type);
    }
  }
  return "";
}

void execute(const WgmmaOp& op) {
  static thread_local float A[64][16], B[128][16];
  Descriptor da{}, db{};
  std::string error = decode(op.desc_b, op.trans_b, &db);
  if (error.empty() && !op.a_in_registers) error = decode(op.desc_a, op.trans_a, &da);
  if (!error.empty()) fail_launch("wgmma (" + site_text(op.file, op.line) + "): " + error);
  if (op.a_in_registers) {
    for (unsigned thread = 0; thread < kWarpgroupSize; thread++) {
      const unsigned w = thread / 32, lane = thread % 32, g = lane / 4, t = lane % 4;
      const auto& a = op.a[thread];
      unpack(a[0], op.type, &A[16 * w + g][2 * t], &A[16 * w + g][2 * t + 1]);
      unpack(a[1], op.type, &A[16 * w + g + 8][2 * t], &A[16 * w + g + 8][2 * t + 1]);
      unpack(a[2], op.type, &A[16 * w + g][8 + 2 * t], &A[16 * w + g][8 + 2 * t + 1]);
      unpack(a[3], op.type, &A[16 * w + g + 8][8 + 2 * t], &A[16 * w + g + 8][8 + 2 * t + 1]);
    }
  } else {
    read_operand(da, 64, op.type, A, "wgmma A operand", op.file, op.line);
  }
  read_operand(db, 128, op.type, B, "wgmma B operand", op.file, op.line);
  for (unsigned thread = 0; thread < kWarpgroupSize; thread++) {
    const unsigned w = thread / 32, lane = thread % 32, g = lane / 4, t = lane % 4;
    float* d = op.d[thread];
    for (unsigned i = 0; i < 64; i++) {
      const unsigned c = i / 4, row = 16 * w + g + ((i >> 1) & 1) * 8, col = 8 * c + 2 * t + (i & 1);
      double sum = op.accumulate ? d[i] : 0.0;
      for (unsigned k = 0; k < 16; k++) sum += static_cast<double>(A[row][k]) * B[col][k];
      d[i] = static_cast<float>(sum);
    }
  }
}

std::string wgmma_record(LaneSlot* lanes, unsigned, const LaneMask&, const void* argument) {
  const WgmmaArgument& arg = *static_cast<const WgmmaArgument*>(argument);
  WgmmaOp op;
  op.a_in_registers = arg.a_in_registers;
  op.desc_a = arg.desc_a;
  op.desc_b = arg.desc_b;
  op.accumulate = arg.accumulate;
  op.trans_a = arg.trans_a;
  op.trans_b = arg.trans_b;
  op.type = arg.type;
  op.file = arg.file;
  op.line = arg.line;
  op.d.resize(kWarpgroupSize);
  if (op.a_in_registers) op.a.resize(kWarpgroupSize);
  for (unsigned thread = 0; thread < kWarpgroupSize; thread++) {
    const WgmmaIn& in = *static_cast<const WgmmaIn*>(lanes[thread].in);
    // The descriptors and scale-d are one value for the whole warpgroup.
    if (in.desc_b != arg.desc_b || (!arg.a_in_registers && in.desc_a != arg.desc_a) || in.accumulate != arg.accumulate) {
      return "thread " + std::to_string(thread) + " of the warpgroup passes other descriptors or scale-d than thread 0 (" +
             hex(in.desc_a) + ", " + hex(in.desc_b) + " vs " + hex(arg.desc_a) + ", " + hex(arg.desc_b) + ")";
    }
    op.d[thread] = in.d;
    if (op.a_in_registers) op.a[thread] = in.a;
  }
  const unsigned group = this_thread().index / kWarpgroupSize;
  this_block().ptx->warpgroups[group].ops.push_back(std::move(op));
  return "";
}

std::string wgmma_commit_compute(LaneSlot*, unsigned, const LaneMask&, const void*) {
  WarpgroupMma& wg = this_block().ptx->warpgroups[this_thread().index / kWarpgroupSize];
  wg.group_ends.push_back(wg.ops.size());
  return "";
}

std::string wgmma_wait_compute(LaneSlot*, unsigned, const LaneMask&, const void* argument) {
  const int pending = *static_cast<const int*>(argument);
  WarpgroupMma& wg = this_block().ptx->warpgroups[this_thread().index / kWarpgroupSize];
  const size_t groups = wg.group_ends.size();
  if (groups <= static_cast<size_t>(pending)) return "";
  const size_t done = wg.group_ends[groups - pending - 1];
  for (size_t i = 0; i < done; i++) execute(wg.ops[i]);
  wg.ops.erase(wg.ops.begin(), wg.ops.begin() + static_cast<std::ptrdiff_t>(done));
  wg.group_ends.erase(wg.group_ends.begin(), wg.group_ends.begin() + static_cast<std::ptrdiff_t>(groups - pending));
  for (size_t& end : wg.group_ends) end -= done;
  return "";
}

std::string nothing(LaneSlot*, unsigned, const LaneMask&, const void*) { return ""; }

}  // namespace

void wgmma_fence(const char* file, int line) {
  collective(kWarpgroupSize, 0, true, "wgmma.fence", nullptr, nullptr, &nothing, nullptr, file, line);
}

void wgmma_commit(const char* file, int line) {
  collective(kWarpgroupSize, 0, true, "wgmma.commit_group", nullptr, nullptr, &wgmma_commit_compute, nullptr, file, line);
}

void wgmma_wait(int pending, const char* file, int line) {
  collective(kWarpgroupSize, 0, true, "wgmma.wait_group", nullptr, nullptr, &wgmma_wait_compute, &pending, file, line);
}

void wgmma_m64n128k16(float (&d)[64], const uint32_t* a, uint64_t desc_a, uint64_t desc_b, bool accumulate, bool trans_a,
                      bool trans_b, Type type, const char* file, int line) {
  maybe_yield();
  WgmmaIn in{d, {}, desc_a, desc_b, accumulate};
  if (a != nullptr) std::memcpy(in.a.data(), a, sizeof(in.a));  // register operands are read at issue
  const WgmmaArgument argument{file, line, desc_a, desc_b, a != nullptr, accumulate, trans_a, trans_b, type};
  collective(kWarpgroupSize, 0, true, "wgmma.mma_async.m64n128k16", &in, nullptr, &wgmma_record, &argument, file, line);
}

// =============================================================================================
// wmma (include/mma.h): lane l holds elements 8l..8l+7 of each 16x16 fragment, row-major
// =============================================================================================

namespace {

struct WmmaIn {
  const float* a;
  const float* b;
  const float* c;
};

std::string wmma_compute(LaneSlot* lanes, unsigned, const LaneMask&, const void*) {
  float A[256], B[256], C[256];
  for (int lane = 0; lane < 32; lane++) {
    const WmmaIn& in = *static_cast<const WmmaIn*>(lanes[lane].in);
    std::memcpy(A + 8 * lane, in.a, 8 * sizeof(float));
    std::memcpy(B + 8 * lane, in.b, 8 * sizeof(float));
    std::memcpy(C + 8 * lane, in.c, 8 * sizeof(float));
  }
  for (int lane = 0; lane < 32; lane++) {
    float* d = static_cast<float*>(lanes[lane].out);
    for (int e = 0; e < 8; e++) {
      const int index = 8 * lane + e, row = index / 16, col = index % 16;
      double sum = C[index];
      for (int k = 0; k < 16; k++) sum += static_cast<double>(A[row * 16 + k]) * B[k * 16 + col];
      d[e] = static_cast<float>(sum);
    }
  }
  return "";
}

}  // namespace

void wmma_m16n16k16(float* d, const float* a, const float* b, const float* c, const char* file, int line) {
  maybe_yield();
  WmmaIn in{a, b, c};
  collective(kWarpSize, 0xffffffffull, true, "wmma.mma_sync", &in, d, &wmma_compute, nullptr, file, line);
}

// =============================================================================================
// st.shared / ld.shared
// =============================================================================================

void st_shared(uint32_t addr, const void* value, unsigned bytes, const char* file, int line) {
  std::memcpy(shared_pointer(addr, bytes, bytes, "st.shared", file, line), value, bytes);
}

void ld_shared(uint32_t addr, void* value, unsigned bytes, const char* file, int line) {
  std::memcpy(value, shared_pointer(addr, bytes, bytes, "ld.shared", file, line), bytes);
}

}  // namespace ptx
}  // namespace sv::emu
