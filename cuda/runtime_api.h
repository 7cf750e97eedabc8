// The CUDA runtime as the rest of the addon sees it: plain C++ declarations, no CUDA headers, so
// the N-API glue compiles with or without the toolkit. Implemented in cuda/runtime.cu. Every
// function throws sv::Error (ERR_CUDA, ERR_CUDA_OOM) on failure, with the failing call named.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sv::cuda {

struct DeviceInfo {
  char name[256];
  int major = 0, minor = 0, sm_count = 0;
  size_t total_bytes = 0, free_bytes = 0;
};

enum class CopyKind : int { host_to_device = 1, device_to_host = 2, device_to_device = 3 };

// Number of usable CUDA devices; 0 when there is no driver or no GPU (never throws).
int device_count() noexcept;
// Why device_count() is 0, for error messages ("no CUDA driver", ...).
const char* unavailable_reason() noexcept;
void device_info(int device, DeviceInfo* info);

// The device's work stream (a cudaStream_t). All kernels, copies and stream-ordered frees of the
// addon go through it, so program order is execution order.
void* stream(int device);

// Stream-ordered device memory (cudaMallocAsync from the device's pool).
void* alloc(int device, size_t bytes);
void free_async(int device, void* ptr);
void memset_async(int device, void* ptr, int value, size_t bytes);
void copy_async(int device, void* dst, const void* src, size_t bytes, CopyKind kind);

// Page-locked host staging buffers for copies. A released buffer is reused only after the work
// queued on `device`'s stream so far has completed (device < 0: reusable at once).
void* staging_acquire(size_t bytes);
void staging_release(void* buffer, int device);

// Events: recorded on the device stream; host waits block only the calling (worker) thread.
void* event_record(int device);
void event_wait(void* event);
void event_destroy(void* event);

void synchronize(int device);

}  // namespace sv::cuda
