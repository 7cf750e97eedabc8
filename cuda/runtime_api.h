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
// Whether the work before `event` has finished (never blocks; a failure of that work throws).
bool event_done(void* event);

void synchronize(int device);

// The device the calling thread's CUDA calls go to (every launcher makes its tensors' device
// current first; the glue's op counter relies on that).
int current_device();

// ---- weight streaming: a second stream for uploads, ordered against the work stream by events ----

// The device's copy stream (a cudaStream_t, created on first use): host-to-device uploads that
// overlap the kernels of the work stream.
void* copy_stream(int device);
// H2D copy on the copy stream, issued after everything enqueued on the work stream so far has
// finished (so the destination may still be read by queued kernels). Returns an event recorded
// on the copy stream when the copy is done; pass it to work_stream_wait, then event_destroy.
void* upload_after_work(int device, void* dst, const void* src, size_t bytes);
// Work enqueued on the device's work stream from now on waits for `event`.
void work_stream_wait(int device, void* event);

// Page-locked host memory for tensors that are uploaded again and again (streamed weights).
void* host_alloc_pinned(size_t bytes);
void host_free_pinned(void* ptr) noexcept;

// The stream-ordered pool behind alloc(): memory reserved from the driver and memory handed out,
// now and at their highest since the last reset_pool_high.
struct PoolStats {
  uint64_t reserved_current = 0, reserved_high = 0, used_current = 0, used_high = 0;
};
void pool_stats(int device, PoolStats* stats);
void reset_pool_high(int device);

}  // namespace sv::cuda
