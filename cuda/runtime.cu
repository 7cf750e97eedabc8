// The CUDA runtime layer: one non-blocking stream per device, stream-ordered allocation from the
// device's memory pool, pinned staging buffers, events, and the checked-call error path.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "../native/storage.h"
#include "common.cuh"

namespace sv::cuda {

namespace {

// Errors after which the context is unusable for the rest of the process (CUDA's "sticky" errors:
// every later call returns them too). They come from kernels that faulted.
bool is_sticky(cudaError_t status) {
  switch (status) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

// The first sticky failure per device. Written once, read by every later call on the device.
std::mutex fault_mutex;
std::string faults[kMaxCudaDevices];
std::atomic<bool> faulted[kMaxCudaDevices];

// Text explaining a fault that the failing kernel left behind (the Hopper attention's hang report).
std::vector<std::string (*)()> fault_explainers;

[[noreturn]] void fail_faulted(int device) {
  std::lock_guard<std::mutex> lock(fault_mutex);
  fail("ERR_CUDA_FAULT", "cuda:" + std::to_string(device) + " is unusable after an earlier GPU fault (" + faults[device] +
                             "); a CUDA context cannot recover from this in-process: restart the process");
}

}  // namespace

void add_fault_explainer(std::string (*explain)()) {
  std::lock_guard<std::mutex> lock(fault_mutex);
  fault_explainers.push_back(explain);
}

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  const char* base = std::strrchr(file, '/');
  std::string where = std::string(base ? base + 1 : file) + ":" + std::to_string(line);
  std::string message = std::string(call) + " failed (" + where + "): " + cudaGetErrorName(status) + ": " +
                        cudaGetErrorString(status);
  if (status == cudaErrorMemoryAllocation) fail("ERR_CUDA_OOM", message);
  if (!is_sticky(status)) fail("ERR_CUDA", message);
  int device = -1;
  if (cudaGetDevice(&device) != cudaSuccess || device < 0 || device >= kMaxCudaDevices) device = 0;
  {
    std::lock_guard<std::mutex> lock(fault_mutex);
    if (!faulted[device].load()) {
      for (auto explain : fault_explainers) {
        const std::string why = explain();
        if (!why.empty()) message += "; " + why;
      }
      faults[device] = message;
      faulted[device].store(true);
    }
  }
  fail_faulted(device);
}

std::string device_fault(int device) noexcept {
  if (device < 0 || device >= kMaxCudaDevices || !faulted[device].load()) return "";
  std::lock_guard<std::mutex> lock(fault_mutex);
  return faults[device];
}

void require_healthy(int device) {
  if (device >= 0 && device < kMaxCudaDevices && faulted[device].load()) fail_faulted(device);
}

namespace {

// What a device's contexts share (native/exec_context.h), made when the device is first used.
struct DeviceState {
  std::once_flag once;
  cudaStream_t stream = nullptr;  // the work stream
  cudaStream_t copy = nullptr;    // uploads of streamed weights
  Workspace workspace;
};

DeviceState states[kMaxCudaDevices];
std::string unavailable;

void check_index(int device) {
  SV_CHECK(device >= 0 && device < kMaxCudaDevices && device < device_count(), "ERR_DEVICE",
           "no CUDA device cuda:" + std::to_string(device) + " (" + std::to_string(device_count()) + " available)");
}

DeviceState& state(int device) {
  check_index(device);
  require_healthy(device);
  DeviceState& s = states[device];
  std::call_once(s.once, [&] {
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&s.copy, cudaStreamNonBlocking));
    // Keep freed blocks in the pool instead of returning them to the driver: model code frees and
    // re-allocates the same sizes every block and step.
    cudaMemPool_t pool;
    CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t threshold = UINT64_MAX;
    CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  });
  SV_CHECK(s.stream != nullptr && s.copy != nullptr, "ERR_CUDA", "CUDA device cuda:" + std::to_string(device) + " failed to initialise");
  return s;
}

// Pinned staging buffers, cached for reuse. A released buffer carries the event after which it is
// free (its last copy's, or one recorded at release); it is handed out again only once that event
// has completed. cudaHostAlloc and cudaFreeHost are slow (and cudaFreeHost synchronises the
// device), so both run outside the mutex, and a steady state of read-backs allocates nothing.
struct Staging {
  void* buffer;
  size_t bytes;
  cudaEvent_t ready;  // null: reusable now
};
std::mutex staging_mutex;
std::list<Staging> staging_cache;
std::map<void*, size_t> staging_sizes;
size_t staging_cached_bytes = 0;
uint64_t staging_allocations = 0, staging_reuses = 0;
constexpr size_t kStagingCacheLimit = size_t{1} << 30;

// Whether a cached buffer may be handed out. A failed event (the device faulted) leaves the buffer
// in the cache for good: the copy that used it may never have ended.
bool staging_ready(const Staging& s) {
  if (s.ready == nullptr) return true;
  return event_state(s.ready) == EventState::done;
}

void staging_free(const std::vector<Staging>& dropped) noexcept {
  for (const Staging& s : dropped) {
    if (s.ready) cudaEventDestroy(s.ready);
    cudaFreeHost(s.buffer);
  }
  cudaGetLastError();
}

// The CUDA runtime's version as "13.0".
std::string version_text(int version) {
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

// The kernel module's release ("580.65.06"), from the text the NVIDIA driver publishes.
std::string driver_release() {
  std::FILE* f = std::fopen("/proc/driver/nvidia/version", "r");
  if (f == nullptr) return "";
  char line[512] = {0};
  const bool read = std::fgets(line, sizeof(line), f) != nullptr;
  std::fclose(f);
  if (!read) return "";
  const char* marker = std::strstr(line, "Kernel Module");
  if (marker == nullptr) return "";
  marker += std::strlen("Kernel Module");
  while (*marker == ' ' || *marker == '\t') marker++;
  std::string release;
  while ((*marker >= '0' && *marker <= '9') || *marker == '.') release += *marker++;
  return release;
}

// The oldest driver release a CUDA runtime major version runs on (NVIDIA's minor version
// compatibility table: 12.x needs >= 525, 13.x >= 580).
std::string minimum_driver(int runtime) {
  const int major = runtime / 1000;
  if (major >= 13) return "580";
  if (major == 12) return "525";
  return "";
}

}  // namespace

void use_device(int device) {
  int current = -1;
  CUDA_CHECK(cudaGetDevice(&current));
  if (current != device) CUDA_CHECK(cudaSetDevice(device));
}

VersionInfo versions() noexcept {
  VersionInfo v;
  if (cudaRuntimeGetVersion(&v.runtime) != cudaSuccess) v.runtime = 0;
  if (cudaDriverGetVersion(&v.driver) != cudaSuccess) v.driver = 0;
  cudaGetLastError();
  try {
    v.driver_release = driver_release();
    v.driver_minimum = minimum_driver(v.runtime);
  } catch (...) {
  }
  return v;
}

int device_count() noexcept {
  static int count = [] {
    int n = 0;
    cudaError_t status = cudaGetDeviceCount(&n);
    if (status != cudaSuccess) {
      const VersionInfo v = versions();
      const std::string release = v.driver_release.empty() ? "" : "driver " + v.driver_release + ", ";
      if (status == cudaErrorInsufficientDriver && v.driver == 0) {
        unavailable = "CUDA is not available: no NVIDIA driver was found (libcuda.so.1 could not be loaded)";
      } else if (status == cudaErrorInsufficientDriver) {
        unavailable = "CUDA is not available: the NVIDIA driver is too old for this addon (" + release + "CUDA " +
                      version_text(v.driver) + "); the addon's CUDA runtime " + version_text(v.runtime) +
                      " needs driver " + v.driver_minimum + " or later: update the driver, or build the addon with a " +
                      "CUDA toolkit of version " + version_text(v.driver) + " or older";
      } else {
        unavailable = std::string("CUDA is not available: ") + cudaGetErrorName(status) + ": " + cudaGetErrorString(status);
      }
      cudaGetLastError();
      return 0;
    }
    if (n == 0) unavailable = "CUDA driver found but no GPU is visible";
    return n > kMaxCudaDevices ? kMaxCudaDevices : n;
  }();
  return count;
}

const char* unavailable_reason() noexcept {
  device_count();
  return unavailable.c_str();
}

void device_info(int device, DeviceInfo* info) {
  check_index(device);
  require_healthy(device);
  use_device(device);
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  std::snprintf(info->name, sizeof(info->name), "%s", prop.name);
  info->major = prop.major;
  info->minor = prop.minor;
  info->sm_count = prop.multiProcessorCount;
  CUDA_CHECK(cudaMemGetInfo(&info->free_bytes, &info->total_bytes));
}

ExecContext device_context(int device, const KernelPolicy& policy) {
  DeviceState& s = state(device);
  ExecContext ctx;
  ctx.device = device;
  ctx.work_stream = s.stream;
  ctx.copy_stream = s.copy;
  ctx.workspace = &s.workspace;
  ctx.blaslt = blaslt_of(device);
  ctx.policy = policy;
  return ctx;
}

namespace {

std::string mib(uint64_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

cudaMemPool_t default_pool(int device) {
  cudaMemPool_t pool;
  CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  return pool;
}

}  // namespace

void* gemm_workspace(const ExecContext& ctx, size_t bytes) {
  Workspace& w = *ctx.workspace;
  std::lock_guard<std::mutex> lock(w.lock);
  if (w.gemm == nullptr) {
    try {
      w.gemm = alloc(ctx.device, bytes);
    } catch (const Error& error) {
      if (error.code() != "ERR_CUDA_OOM") throw;
      return nullptr;
    }
  }
  return w.gemm;
}

void trim_pool(int device) {
  cudaStream_t s = state(device).stream;
  use_device(device);
  CUDA_CHECK(cudaStreamSynchronize(s));  // blocks freed on the stream are back in the pool
  CUDA_CHECK(cudaMemPoolTrimTo(default_pool(device), 0));
}

void* alloc(int device, size_t bytes) {
  cudaStream_t s = state(device).stream;
  use_device(device);
  void* ptr = nullptr;
  cudaError_t status = cudaMallocAsync(&ptr, bytes, s);
  if (status == cudaErrorMemoryAllocation) {
    // The pool keeps freed blocks (the release threshold is unlimited) and may hold enough free
    // memory in pieces of the wrong size: give it back to the driver and try once more.
    cudaGetLastError();
    trim_pool(device);
    status = cudaMallocAsync(&ptr, bytes, s);
  }
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    PoolStats pool;
    try {
      pool_stats(device, &pool);
    } catch (const Error&) {
    }
    cudaGetLastError();
    fail("ERR_CUDA_OOM", "GPU memory exhausted on cuda:" + std::to_string(device) + ": could not allocate " + mib(bytes) +
                             " (in use " + mib(pool.used_current) + ", reserved by the pool " + mib(pool.reserved_current) +
                             ", free on the device " + mib(free_bytes) + " of " + mib(total_bytes) + ")");
  }
  CUDA_CHECK(status);
  return ptr;
}

void free_async(int device, void* ptr) {
  cudaStream_t s = state(device).stream;
  use_device(device);
  CUDA_CHECK(cudaFreeAsync(ptr, s));
}

void memset_async(int device, void* ptr, int value, size_t bytes) {
  cudaStream_t s = state(device).stream;
  use_device(device);
  CUDA_CHECK(cudaMemsetAsync(ptr, value, bytes, s));
}

void copy_async(int device, void* dst, const void* src, size_t bytes, CopyKind kind) {
  cudaStream_t s = state(device).stream;
  use_device(device);
  cudaMemcpyKind k = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                     : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                        : cudaMemcpyDeviceToDevice;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, s));
}

void* staging_acquire(size_t bytes) {
  if (bytes == 0) bytes = 1;
  {
    std::lock_guard<std::mutex> lock(staging_mutex);
    for (auto it = staging_cache.begin(); it != staging_cache.end(); ++it) {
      // Reuse a buffer that is big enough but not wastefully so.
      if (it->bytes >= bytes && it->bytes <= 2 * bytes + (size_t{4} << 20) && staging_ready(*it)) {
        void* buffer = it->buffer;
        if (it->ready) cudaEventDestroy(it->ready);
        staging_cached_bytes -= it->bytes;
        staging_cache.erase(it);
        staging_reuses++;
        return buffer;
      }
    }
  }
  void* buffer = nullptr;
  CUDA_CHECK(cudaHostAlloc(&buffer, bytes, cudaHostAllocPortable));
  std::lock_guard<std::mutex> lock(staging_mutex);
  staging_sizes[buffer] = bytes;
  staging_allocations++;
  return buffer;
}

StagingStats staging_stats() {
  std::lock_guard<std::mutex> lock(staging_mutex);
  StagingStats stats;
  stats.allocations = staging_allocations;
  stats.reuses = staging_reuses;
  stats.cached_bytes = staging_cached_bytes;
  return stats;
}

void staging_release_after(void* buffer, void* event) noexcept {
  if (buffer == nullptr) {
    event_destroy(event);
    return;
  }
  std::vector<Staging> dropped;
  try {
    std::lock_guard<std::mutex> lock(staging_mutex);
    size_t bytes = staging_sizes[buffer];
    staging_cache.push_back(Staging{buffer, bytes, static_cast<cudaEvent_t>(event)});
    staging_cached_bytes += bytes;
    // Trim the oldest completed buffers beyond the cache limit.
    for (auto it = staging_cache.begin(); staging_cached_bytes > kStagingCacheLimit && it != staging_cache.end();) {
      if (staging_ready(*it)) {
        dropped.push_back(*it);
        staging_sizes.erase(it->buffer);
        staging_cached_bytes -= it->bytes;
        it = staging_cache.erase(it);
      } else {
        ++it;
      }
    }
  } catch (...) {
    // Out of host memory for the bookkeeping: the buffer is lost, nothing else.
  }
  staging_free(dropped);
}

void staging_release(void* buffer, int device) noexcept {
  if (buffer == nullptr) return;
  cudaEvent_t ready = nullptr;
  if (device >= 0) {
    try {
      ready = static_cast<cudaEvent_t>(event_record(device));
    } catch (...) {
      // No event (the device faulted, or CUDA refused): nothing tells when the queued copies are
      // done, so the buffer must never be handed out again. Keep it out of the cache.
      return;
    }
  }
  staging_release_after(buffer, ready);
}

void* event_record(int device) {
  cudaStream_t s = state(device).stream;
  use_device(device);
  cudaEvent_t event = nullptr;
  // Blocking sync: a waiting libuv thread sleeps instead of spinning a core.
  CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming | cudaEventBlockingSync));
  const cudaError_t status = cudaEventRecord(event, s);
  if (status != cudaSuccess) {
    cudaEventDestroy(event);
    CUDA_CHECK(status);
  }
  return event;
}

void event_wait(void* event) { CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event))); }

bool event_done(void* event) {
  cudaError_t status = cudaEventQuery(static_cast<cudaEvent_t>(event));
  if (status == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  CUDA_CHECK(status);
  return true;
}

EventState event_state(void* event) noexcept {
  try {
    return event_done(event) ? EventState::done : EventState::pending;
  } catch (...) {
    return EventState::failed;  // recorded by the error path when it was a device fault
  }
}

void event_destroy(void* event) noexcept {
  if (event) cudaEventDestroy(static_cast<cudaEvent_t>(event));
}

void synchronize(int device) {
  cudaStream_t s = state(device).stream;
  use_device(device);
  CUDA_CHECK(cudaStreamSynchronize(s));
}

int current_device() {
  int device = -1;
  CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

void* upload_after_work(const ExecContext& ctx, void* dst, const void* src, size_t bytes) {
  require_healthy(ctx.device);
  cudaStream_t work = static_cast<cudaStream_t>(ctx.work_stream);
  cudaStream_t copy = static_cast<cudaStream_t>(ctx.copy_stream);
  use_device(ctx.device);
  cudaEvent_t work_done = nullptr, uploaded = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&work_done, cudaEventDisableTiming));
  try {
    CUDA_CHECK(cudaEventRecord(work_done, work));
    CUDA_CHECK(cudaStreamWaitEvent(copy, work_done, 0));
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, copy));
    CUDA_CHECK(cudaEventCreateWithFlags(&uploaded, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(uploaded, copy));
  } catch (...) {
    cudaEventDestroy(work_done);
    if (uploaded) cudaEventDestroy(uploaded);
    throw;
  }
  // Destroying a recorded event is safe: its resources go once the stream has passed it.
  CUDA_CHECK(cudaEventDestroy(work_done));
  return uploaded;
}

void work_stream_wait(const ExecContext& ctx, void* event) {
  require_healthy(ctx.device);
  cudaStream_t work = static_cast<cudaStream_t>(ctx.work_stream);
  use_device(ctx.device);
  CUDA_CHECK(cudaStreamWaitEvent(work, static_cast<cudaEvent_t>(event), 0));
}

void* host_alloc_pinned(size_t bytes) {
  void* ptr = nullptr;
  cudaError_t status = cudaHostAlloc(&ptr, bytes == 0 ? 1 : bytes, cudaHostAllocPortable);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    fail("ERR_OOM", "could not page-lock " + std::to_string(bytes >> 20) + " MiB of host memory");
  }
  CUDA_CHECK(status);
  return ptr;
}

void host_free_pinned(void* ptr) noexcept {
  if (ptr) cudaFreeHost(ptr);
}

void pool_stats(int device, PoolStats* stats) {
  state(device);
  cudaMemPool_t pool = default_pool(device);
  CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &stats->reserved_current));
  CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &stats->reserved_high));
  CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &stats->used_current));
  CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &stats->used_high));
}

void reset_pool_high(int device) {
  state(device);
  cudaMemPool_t pool = default_pool(device);
  uint64_t zero = 0;  // the only value these attributes accept: resets the high-water marks
  CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &zero));
  CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero));
}

}  // namespace sv::cuda
