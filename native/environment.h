// The one place native code reads the environment. Kernel choices are not read here: they come
// from JavaScript as the device's kernel policy (native/kernel_policy.h, lib/kernel-policy.ts). What
// is read, and by whom:
//   STEPVIDEO_POISON=1       storage.cc: fill new allocations with NaN (tests of uninitialised reads)
//   STEPVIDEO_THREADS        cpu/parallel.cc: CPU backend threads
//   STEPVIDEO_CUBLASLT, STEPVIDEO_NCCL, CUDA_PATH, CUDA_HOME, VIRTUAL_ENV, CONDA_PREFIX, HOME
//                            cuda/library_search.cu: where libcublasLt and libnccl are looked for
//   STEPVIDEO_EMU_MEMORY_MIB, STEPVIDEO_EMU_SCHEDULE, STEPVIDEO_EMU_WORKERS
//                            cuda/emulator: the emulated device's memory, warp schedule and workers
#pragma once

#include <string>

namespace sv {

// The variable's value, "" when it is unset.
std::string environment(const char* name);

}  // namespace sv
