// The emulated device's runtime, as the rest of the emulator and the addon's emulator-only exports
// see it (the CUDA runtime API itself is declared in include/cuda_runtime.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include <cuda_runtime.h>

#include "hooks.h"

namespace sv::emu {

// Enqueues host work on a stream: it runs in stream order, when the stream is executed (the
// reference cuBLASLt's products). A non-success result is a kernel failure: the device is lost.
cudaError_t enqueue_host_work(cudaStream_t stream, const char* what, std::function<cudaError_t(std::string* report)> work);

}  // namespace sv::emu
