// The emulated device's test hooks, as the addon's emulator-only exports reach them (no CUDA types
// here: native/ glue includes this header without the emulator's CUDA headers).
#pragma once
#include <cstddef>
#include <string>

namespace sv::emu {

// Fault injection for tests of the error paths: the `after`-th next call of `site` fails
// ("cudaMallocAsync": out of memory; "kernel": the kernel traps; "cublasLtCreate": the handle is
// not created; "cudaEventRecord": an invalid handle). after = 0 cancels.
void inject_failure(const std::string& site, int after);
// True (once) when an injected failure of `site` is due.
bool injected(const char* site);

// The emulated memory: a capacity (STEPVIDEO_EMU_MEMORY_MIB, default 8 GiB; settable for tests),
// a stream-ordered pool that reuses only blocks of exactly the requested size (so AddressSanitizer
// sees every allocation's real bounds), and its figures.
void set_memory_capacity(size_t bytes);
struct MemoryFigures {
  size_t capacity, reserved, used;
};
MemoryFigures memory_figures();

}  // namespace sv::emu
