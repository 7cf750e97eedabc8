// The emulated device's runtime, as the rest of the emulator and the addon's emulator-only exports
// see it (the CUDA runtime API itself is declared in include/cuda_runtime.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include <cuda_runtime.h>

namespace sv::emu {

// Enqueues host work on a stream: it runs in stream order, when the stream is executed (the
// reference cuBLASLt's products). A non-success result is a kernel failure: the device is lost.
cudaError_t enqueue_host_work(cudaStream_t stream, const char* what, std::function<cudaError_t(std::string* report)> work);

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
