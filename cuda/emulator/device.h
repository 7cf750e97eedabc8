// The emulated CUDA device as kernel code sees it: the built-in variables, block synchronisation,
// warp shuffles, shared memory, and kernel launches. The shim headers (include/) map CUDA's names
// onto these; cuda/ptx.cuh's emulated bodies use the PTX entry points of ptx.h.
//
// Every call that can block takes the call site (file, line): the deadlock and divergence reports
// name where each thread waits.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <tuple>
#include <type_traits>
#include <utility>

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

namespace sv::emu {

// The built-in variables of the running GPU thread.
struct ThreadView {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};

// Every GPU thread runs on a fiber stack of kFiberStackBytes, aligned to its size, whose first bytes
// name the thread: the running thread is found from the address of any local variable, with no
// thread-local lookup (a call through __tls_get_addr in a shared library, on every threadIdx).
// (One size for every unit of a build: SV_TSAN builds instrument the kernels but not the emulator.)
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(SV_TSAN)
constexpr size_t kFiberStackBytes = size_t{1} << 20;  // instrumented frames are several times larger
#else
constexpr size_t kFiberStackBytes = size_t{256} << 10;
#endif
struct FiberTag {
  const ThreadView* view;
  void* thread;  // the emulator's Thread
};
inline const FiberTag& fiber_tag() {
  char probe;
  uintptr_t here = reinterpret_cast<uintptr_t>(&probe);
  // Hide where the address came from: the tag is not part of `probe`, and a compiler that tracks
  // pointer provenance would otherwise treat the load below as reading the (uninitialised) probe.
  asm("" : "+r"(here));
  return *reinterpret_cast<const FiberTag*>(here & ~static_cast<uintptr_t>(kFiberStackBytes - 1));
}
inline const ThreadView& view() { return *fiber_tag().view; }

// ---- synchronisation ----

// bar.sync `id` with `count` threads (0: every thread of the block; __syncthreads is barrier 0).
void barrier_sync(int id, unsigned count, const char* file, int line);
void syncwarp(unsigned mask, const char* file, int line);

enum class ShuffleMode { idx, up, down, bfly };
// __shfl*_sync on a 32-bit value: every lane in `mask` must take part, at the same call site.
uint32_t shuffle(ShuffleMode mode, unsigned mask, uint32_t value, int lane_or_delta, int width, const char* file, int line);

// A kernel trap (__trap, failed device assert): the launch fails and the device is lost, as on a GPU.
[[noreturn]] void trap(const char* why, const char* file, int line);

// The first statement of a kernel declared with __launch_bounds__ (inserted by launch_bounds.mjs):
// a block larger than `max_threads_per_block` fails the launch with cudaErrorLaunchOutOfResources
// ("too many resources requested for launch"), the launch a GPU's driver refuses for such a kernel.
void check_launch_bounds(const char* file, int line, int max_threads_per_block, int min_blocks_per_sm = 0);

// ---- shared memory ----

// The block's dynamic shared memory (extern __shared__), at an offset that is exactly `align`
// (never more aligned than declared, so code that assumes more fails here as it may on a GPU).
void* dynamic_shared(size_t align);
// A static __shared__ variable: one instance per block, made by the first thread that reaches the
// declaration (`key` identifies the declaration), filled with 0xFF bytes (NaN in every float type).
void* static_shared(const void* key, size_t bytes, size_t align, const char* name);
// Generic pointer into the block's shared memory -> shared-window address (__cvta_generic_to_shared).
uint32_t shared_address(const void* pointer, const char* file, int line);
// Shared-window address -> pointer, after checking that [address, address + bytes) lies in one
// declared region and is `align`-aligned.
void* shared_pointer(uint32_t address, size_t bytes, size_t align, const char* what, const char* file, int line);

// A point where the seeded random schedule may switch to another thread.
void maybe_yield();
// %globaltimer: nanoseconds of a steady clock.
uint64_t global_timer_ns();

// ---- kernel launches ----

struct LaunchSite {
  const char* file;
  int line;
  const char* function;
};

// Validates a launch and enqueues `body` on `stream` to run once per GPU thread of the grid.
// Returns the launch error (cudaErrorInvalidConfiguration, ...) as an int; 0 on success.
int enqueue_launch(const void* kernel, dim3 grid, dim3 block, size_t dynamic_shared_bytes, void* stream,
                   std::function<void()> body, LaunchSite site);

// Launches a kernel: arguments are converted to the kernel's parameter types and copied, as the
// CUDA runtime copies them at launch; every thread then runs kernel(arguments...).
template <typename... Params, typename... Args>
int launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t dynamic_shared_bytes, void* stream, LaunchSite site,
           Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "kernel launched with the wrong number of arguments");
  auto arguments = std::make_shared<std::tuple<std::decay_t<Params>...>>(std::forward<Args>(args)...);
  return enqueue_launch(reinterpret_cast<const void*>(kernel), grid, block, dynamic_shared_bytes, stream,
                        [kernel, arguments] { std::apply(kernel, *arguments); }, site);
}

}  // namespace sv::emu
