// The CUDA runtime as the rest of the addon sees it: plain C++ declarations, no CUDA headers, so
// the N-API glue compiles with or without the toolkit. Implemented in cuda/runtime.cu. Every
// function throws sv::Error (ERR_CUDA, ERR_CUDA_OOM, ERR_CUDA_FAULT) on failure, with the failing
// call named, except those marked noexcept: they run in destructors and finalizers.
//
// Health: a sticky error (a kernel that faulted: illegal address, trap, misaligned access, ...)
// leaves the device's CUDA context unusable for the rest of the process; CUDA cannot recover it.
// The first such failure is recorded, and from then on every call on that device fails with
// ERR_CUDA_FAULT naming it, instead of returning garbage or crashing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "../native/exec_context.h"

namespace sv::cuda {

struct DeviceInfo {
  char name[256];
  int major = 0, minor = 0, sm_count = 0;
  size_t total_bytes = 0, free_bytes = 0;
};

enum class CopyKind : int { host_to_device = 1, device_to_host = 2, device_to_device = 3 };

// Number of usable CUDA devices; 0 when there is no driver or no GPU (never throws).
int device_count() noexcept;
// Why device_count() is 0, for error messages ("no CUDA driver", "driver too old", ...).
const char* unavailable_reason() noexcept;
void device_info(int device, DeviceInfo* info);

// The CUDA versions involved: `runtime` is the cudart this addon was built with (e.g. 13000), `driver`
// the newest CUDA version the installed driver supports (0 without a driver), `driver_release` the
// kernel module's version from /proc/driver/nvidia/version ("" when unknown), `driver_minimum` the
// driver release the runtime needs (e.g. "580").
struct VersionInfo {
  int runtime = 0, driver = 0;
  std::string driver_release, driver_minimum;
};
VersionInfo versions() noexcept;

// The first sticky failure on `device`, or "" while the device is healthy.
std::string device_fault(int device) noexcept;
// Throws ERR_CUDA_FAULT when `device` has had a sticky failure.
void require_healthy(int device);
// Enqueues a kernel that traps, as a kernel bug would fault the device (tests of the fault path).
void launch_fault(const ExecContext& ctx);

// A context for `device` with the given kernel choices: the device's work stream (all kernels,
// copies and stream-ordered frees of the addon go through it, so program order is execution
// order), its copy stream, its workspace and its cuBLASLt handle. Initialises the device.
ExecContext device_context(int device, const KernelPolicy& policy);

// The cuBLASLt handle slot of a device (cuda/gemm_plans.cu; the handle is made on the first GEMM).
BlasLt* blaslt_of(int device);

// Scratch memory shared by the contexts of one device: the cuBLASLt workspace, made on the first
// GEMM and kept for the life of the process.
struct Workspace {
  std::mutex lock;
  void* gemm = nullptr;
};
// The context's cuBLASLt workspace of `bytes` (the same size on every call), or nullptr when it
// cannot be allocated now: the GEMM then takes the own kernel, and the next call asks again.
void* gemm_workspace(const ExecContext& ctx, size_t bytes);

// Stream-ordered device memory (cudaMallocAsync from the device's pool). When the pool cannot
// serve a request, the device is synchronised and the pool's free memory returned to the driver
// before one retry (the pool keeps freed blocks for reuse, which fragments); a second failure is
// ERR_CUDA_OOM naming the request and the pool's and the driver's figures.
void* alloc(int device, size_t bytes);
// Waits for the device and returns the pool's unused memory to the driver, so that the driver's
// free figure is what a new allocation of any size can get.
void trim_pool(int device);
void free_async(int device, void* ptr);
void memset_async(int device, void* ptr, int value, size_t bytes);
void copy_async(int device, void* dst, const void* src, size_t bytes, CopyKind kind);

// Page-locked host staging buffers for copies, cached for reuse.
void* staging_acquire(size_t bytes);
// How often staging_acquire had to page-lock new memory, and how often it reused a cached buffer.
struct StagingStats {
  uint64_t allocations = 0, reuses = 0, cached_bytes = 0;
};
StagingStats staging_stats();
// Returns a buffer to the cache, reusable once the work queued on `device`'s stream so far has
// completed (device < 0: at once).
void staging_release(void* buffer, int device) noexcept;
// Returns a buffer to the cache, reusable once `event` (from event_record, taken over) has
// completed: the event of the buffer's last copy, so later work does not delay its reuse.
void staging_release_after(void* buffer, void* event) noexcept;

// Events: recorded on the device stream; host waits block only the calling (worker) thread.
void* event_record(int device);
void event_wait(void* event);
void event_destroy(void* event) noexcept;
// Whether the work before `event` has finished (never blocks; a failure of that work throws).
bool event_done(void* event);
enum class EventState { pending, done, failed };
// The same question without throwing: `failed` when that work (or the device) failed.
EventState event_state(void* event) noexcept;

// A staging buffer lent to one copy, released when the holder goes (after the copy's event when
// one was recorded), whatever happened in between: constructors and workers that fail part-way
// cannot leak it, and the release never throws.
class StagingHold {
 public:
  explicit StagingHold(size_t bytes) : buffer_(staging_acquire(bytes)) {}
  StagingHold(const StagingHold&) = delete;
  StagingHold& operator=(const StagingHold&) = delete;
  ~StagingHold() {
    if (event_ != nullptr) {
      staging_release_after(buffer_, event_);
    } else {
      staging_release(buffer_, device_);  // device_ < 0: no copy was enqueued, reusable at once
    }
  }
  void* data() const { return buffer_; }
  // Call right after enqueueing the copy that reads or writes the buffer on `device`: records the
  // copy's event (wait on it with event()). Should recording fail, the release still waits for
  // everything queued on `device`.
  void copied_on(int device) {
    device_ = device;
    event_destroy(event_);
    event_ = nullptr;
    event_ = event_record(device);
  }
  void* event() const { return event_; }

 private:
  void* buffer_;
  void* event_ = nullptr;
  int device_ = -1;
};

void synchronize(int device);

// The device the calling thread's CUDA calls go to (every launcher makes its tensors' device
// current first; the glue's op counter relies on that).
int current_device();

// ---- weight streaming: a second stream for uploads, ordered against the work stream by events ----

// H2D copy on the context's copy stream, issued after everything enqueued on its work stream so
// far has finished (so the destination may still be read by queued kernels). Returns an event
// recorded on the copy stream when the copy is done; pass it to work_stream_wait, then event_destroy.
void* upload_after_work(const ExecContext& ctx, void* dst, const void* src, size_t bytes);
// Work enqueued on the context's work stream from now on waits for `event`.
void work_stream_wait(const ExecContext& ctx, void* event);

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
