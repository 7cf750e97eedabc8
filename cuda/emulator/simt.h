// The SIMT layer's internals, shared by the scheduler (simt.cc) and the PTX emulation (ptx.cc).
// Kernel code never includes this header (it sees device.h).
//
// One launch runs its blocks on a pool of OS threads ("workers"); a worker runs one block at a time,
// each GPU thread of the block as a fiber. A fiber runs until it blocks (a barrier, a warp
// collective that not every lane has reached, a failed mbarrier try_wait) or exits; the scheduler
// then picks the next ready thread: in order (FIFO) by default, or at random from a seed
// (STEPVIDEO_EMU_SCHEDULE=random:<seed>), which also switches at PTX calls. When nothing can run and
// not every thread has exited, the block is deadlocked and the report names every thread's state and
// call site. Any failure (deadlock, divergence, a bad shared-memory access, a trap) stops the launch;
// the stream reports it as the CUDA error the GPU would give, with the report as its text.
#pragma once
#include <bitset>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>  // the emulator's own (include/): cudaError_t values

#include "device.h"
#include "fiber.h"

namespace sv::emu {

constexpr int kWarpSize = 32;
constexpr int kWarpgroupSize = 128;
constexpr int kMaxBlockThreads = 1024;
constexpr int kNamedBarriers = 16;

enum class ThreadState { ready, running, barrier, collective, spinning, exited };

// Where and why a thread waits (for reports).
struct WaitSite {
  const char* what = "";
  const char* file = "";
  int line = 0;
  int64_t detail0 = 0, detail1 = 0;  // barrier id/count, mbarrier address/parity, ...
};

using LaneMask = std::bitset<kWarpgroupSize>;

// One lane's operands of a warp or warpgroup collective: pointers into the lane's own stack, valid
// while it waits.
struct LaneSlot {
  const void* in = nullptr;
  void* out = nullptr;
};

// Computes the results of a collective once every participant has arrived; `lanes` is indexed by
// the lane's position in the group (0..31 or 0..127). Returns "" or an error report.
using CollectiveCompute = std::string (*)(LaneSlot* lanes, unsigned group_size, const LaneMask& mask, const void* argument);

// A cp.async copy in flight: lands (and the destination stops reading as poison) at wait_group.
struct AsyncCopy {
  unsigned char* dst;
  const unsigned char* src;
  unsigned bytes;      // copied from src
  unsigned size;       // total, the rest zero-filled
};

struct Worker;

struct Thread {
  ThreadView view;
  Fiber fiber;
  Worker* worker = nullptr;  // the OS thread running this thread's block
  unsigned index = 0;  // linear index in the block
  ThreadState state = ThreadState::ready;
  WaitSite site;
  // cp.async: copies issued and not landed; group_ends[i] = copies.size() when group i was committed.
  std::vector<AsyncCopy> copies;
  std::vector<size_t> group_ends;
};

// A warp or warpgroup collective being assembled.
struct Collective {
  bool open = false;
  const char* what = nullptr;
  const char* file = nullptr;
  int line = 0;
  LaneMask mask;           // participating lanes (bit per lane of the group)
  uint64_t mask_bits = 0;  // the mask as the lanes passed it (warps)
  LaneMask arrived;
  CollectiveCompute compute = nullptr;
  const void* argument = nullptr;
  LaneSlot lanes[kWarpgroupSize];
};

struct NamedBarrier {
  unsigned count = 0;     // threads expected (0: none waiting)
  unsigned arrived = 0;
  const char* file = nullptr;
  int line = 0;
};

// Per-block state of the PTX emulation (ptx.cc), reset with the block.
struct PtxBlockState;

struct Block {
  uint3 index{};
  unsigned threads = 0;
  std::vector<Collective> warp_collectives;       // one per warp
  std::vector<Collective> warpgroup_collectives;  // one per warpgroup
  NamedBarrier barriers[kNamedBarriers];
  uint64_t progress = 0;  // bumped by anything that may let a spinning thread through
  std::string failure;
  int failure_code = 0;   // the cudaError_t the launch fails with
  std::shared_ptr<PtxBlockState> ptx;  // made and reset by ptx.cc
};

// What one launch runs (built by the runtime, run by run_launch).
struct LaunchPlan {
  dim3 grid, block;
  size_t dynamic_shared = 0;
  std::function<void()> body;
  LaunchSite site;
};

// Runs every block of a launch; an empty report when every block finished.
struct RunResult {
  std::string report;  // the first failure
  int error = 0;       // its cudaError_t
};
RunResult run_launch(const LaunchPlan& plan);

// ---- for ptx.cc and the collective helpers ----

// The running GPU thread (found from its fiber stack) and its block.
inline Thread& this_thread() { return *static_cast<Thread*>(fiber_tag().thread); }
Block& this_block();
// Lane index in the warp / warpgroup, and the group's index in the block.
inline unsigned lane_of(const Thread& t) { return t.index % kWarpSize; }

// Joins the collective of the calling thread's warp (group_size 32) or warpgroup (128). Every lane
// in `mask` must arrive at the same call site; the last to arrive runs `compute` for all of them.
// `aligned` collectives (.sync.aligned: mma, ldmatrix, wgmma) need every lane of the group.
void collective(unsigned group_size, uint64_t mask, bool aligned, const char* what, const void* in, void* out,
                CollectiveCompute compute, const void* argument, const char* file, int line);

// Blocks the calling thread until it is woken (a spin wait that saw no progress): the scheduler
// runs others first and reports a deadlock when every remaining thread only spins.
void spin_yield(const WaitSite& site);
// Something changed that a spinning thread may be waiting for.
void note_progress();

// Stops the launch with a report and the CUDA error the GPU would raise (default: an unspecified
// launch failure); the calling thread never resumes.
[[noreturn]] void fail_launch(const std::string& report, int error_code = cudaErrorLaunchFailure);

// Shared memory of the running block: base pointer and the check of a region.
unsigned char* shared_base();
void check_shared(const void* pointer, size_t bytes, size_t align, const char* what, const char* file, int line);
// Marks [pointer, pointer + bytes) of shared memory as poison (0xFF) until written.
void poison_shared(void* pointer, size_t bytes);

// "(x, y, z)" and "thread 37 (warp 1, lane 5)".
std::string format_index(uint3 v);
std::string describe_thread(const Thread& t);

// A TMA copy in flight (tma.cc): lands, and completes `size` bytes on its mbarrier, when a thread
// next waits on that barrier (ptx.cc).
struct TmaCopy {
  std::function<void()> land;
  uint32_t size;
};
namespace ptx {
void add_tma_copy(uint32_t bar, TmaCopy copy, const char* file, int line);
}

// Hooks of the PTX emulation (ptx.cc): per-block state reset, and checks when a thread exits.
void ptx_block_reset(Block& block);
void ptx_thread_exit(Thread& thread);

// Emulator settings from the environment (read once).
struct Settings {
  bool random_schedule = false;
  uint64_t seed = 0;
  unsigned workers = 1;
};
const Settings& settings();

}  // namespace sv::emu
