// The CUDA runtime layer: one non-blocking stream per device, stream-ordered allocation from the
// device's memory pool, pinned staging buffers, events, and the checked-call error path.
#include <cuda_runtime.h>

#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <string>

#include "../native/storage.h"
#include "common.cuh"

namespace sv::cuda {

void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  const char* base = std::strrchr(file, '/');
  std::string where = std::string(base ? base + 1 : file) + ":" + std::to_string(line);
  std::string message = std::string(call) + " failed (" + where + "): " + cudaGetErrorName(status) + ": " +
                        cudaGetErrorString(status);
  if (status == cudaErrorMemoryAllocation) fail("ERR_CUDA_OOM", message);
  fail("ERR_CUDA", message);
}

namespace {

struct DeviceState {
  std::once_flag once;
  cudaStream_t stream = nullptr;
  std::once_flag copy_once;
  cudaStream_t copy = nullptr;  // uploads of streamed weights (copy_stream)
};

DeviceState states[kMaxCudaDevices];
std::string unavailable;

void check_index(int device) {
  SV_CHECK(device >= 0 && device < kMaxCudaDevices && device < device_count(), "ERR_DEVICE",
           "no CUDA device cuda:" + std::to_string(device) + " (" + std::to_string(device_count()) + " available)");
}

DeviceState& state(int device) {
  check_index(device);
  DeviceState& s = states[device];
  std::call_once(s.once, [&] {
    CUDA_CHECK(cudaSetDevice(device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    // Keep freed blocks in the pool instead of returning them to the driver: model code frees and
    // re-allocates the same sizes every block and step.
    cudaMemPool_t pool;
    CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t threshold = UINT64_MAX;
    CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  });
  SV_CHECK(s.stream != nullptr, "ERR_CUDA", "CUDA device cuda:" + std::to_string(device) + " failed to initialise");
  return s;
}

// Pinned staging buffers, cached for reuse. A released buffer carries an event recorded on the
// stream that used it; it is handed out again only once that event has completed.
struct Staging {
  void* buffer;
  size_t bytes;
  cudaEvent_t ready;  // null: reusable now
};
std::mutex staging_mutex;
std::list<Staging> staging_cache;
std::map<void*, size_t> staging_sizes;
size_t staging_cached_bytes = 0;
constexpr size_t kStagingCacheLimit = size_t{1} << 30;

bool staging_ready(const Staging& s) {
  if (s.ready == nullptr) return true;
  cudaError_t status = cudaEventQuery(s.ready);
  if (status == cudaErrorNotReady) {
    cudaGetLastError();
    return false;
  }
  return true;
}

}  // namespace

void use_device(int device) {
  int current = -1;
  CUDA_CHECK(cudaGetDevice(&current));
  if (current != device) CUDA_CHECK(cudaSetDevice(device));
}

int device_count() noexcept {
  static int count = [] {
    int n = 0;
    cudaError_t status = cudaGetDeviceCount(&n);
    if (status != cudaSuccess) {
      unavailable = std::string("CUDA is not available: ") + cudaGetErrorName(status) + ": " + cudaGetErrorString(status);
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
  use_device(device);
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  std::strncpy(info->name, prop.name, sizeof(info->name) - 1);
  info->name[sizeof(info->name) - 1] = 0;
  info->major = prop.major;
  info->minor = prop.minor;
  info->sm_count = prop.multiProcessorCount;
  CUDA_CHECK(cudaMemGetInfo(&info->free_bytes, &info->total_bytes));
}

void* stream(int device) { return state(device).stream; }

void* alloc(int device, size_t bytes) {
  cudaStream_t s = state(device).stream;
  use_device(device);
  void* ptr = nullptr;
  cudaError_t status = cudaMallocAsync(&ptr, bytes, s);
  if (status == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    fail("ERR_CUDA_OOM", "GPU memory exhausted on cuda:" + std::to_string(device) + ": could not allocate " +
                             std::to_string(bytes >> 20) + " MiB (" + std::to_string(free_bytes >> 20) + " MiB free of " +
                             std::to_string(total_bytes >> 20) + " MiB)");
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
        return buffer;
      }
    }
  }
  void* buffer = nullptr;
  CUDA_CHECK(cudaHostAlloc(&buffer, bytes, cudaHostAllocPortable));
  std::lock_guard<std::mutex> lock(staging_mutex);
  staging_sizes[buffer] = bytes;
  return buffer;
}

void staging_release(void* buffer, int device) {
  if (buffer == nullptr) return;
  cudaEvent_t ready = nullptr;
  if (device >= 0) {
    cudaStream_t s = state(device).stream;
    use_device(device);
    CUDA_CHECK(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(ready, s));
  }
  std::lock_guard<std::mutex> lock(staging_mutex);
  size_t bytes = staging_sizes[buffer];
  staging_cache.push_back(Staging{buffer, bytes, ready});
  staging_cached_bytes += bytes;
  // Trim the oldest completed buffers beyond the cache limit.
  for (auto it = staging_cache.begin(); staging_cached_bytes > kStagingCacheLimit && it != staging_cache.end();) {
    if (staging_ready(*it)) {
      if (it->ready) cudaEventDestroy(it->ready);
      cudaFreeHost(it->buffer);
      staging_sizes.erase(it->buffer);
      staging_cached_bytes -= it->bytes;
      it = staging_cache.erase(it);
    } else {
      ++it;
    }
  }
}

void* event_record(int device) {
  cudaStream_t s = state(device).stream;
  use_device(device);
  cudaEvent_t event = nullptr;
  // Blocking sync: a waiting libuv thread sleeps instead of spinning a core.
  CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming | cudaEventBlockingSync));
  CUDA_CHECK(cudaEventRecord(event, s));
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

void event_destroy(void* event) {
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

void* copy_stream(int device) {
  DeviceState& s = state(device);
  std::call_once(s.copy_once, [&] {
    use_device(device);
    CUDA_CHECK(cudaStreamCreateWithFlags(&s.copy, cudaStreamNonBlocking));
  });
  SV_CHECK(s.copy != nullptr, "ERR_CUDA", "the copy stream of cuda:" + std::to_string(device) + " failed to initialise");
  return s.copy;
}

void* upload_after_work(int device, void* dst, const void* src, size_t bytes) {
  cudaStream_t work = state(device).stream;
  cudaStream_t copy = static_cast<cudaStream_t>(copy_stream(device));
  use_device(device);
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

void work_stream_wait(int device, void* event) {
  cudaStream_t work = state(device).stream;
  use_device(device);
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
  cudaMemPool_t pool;
  CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemCurrent, &stats->reserved_current));
  CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &stats->reserved_high));
  CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &stats->used_current));
  CUDA_CHECK(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &stats->used_high));
}

void reset_pool_high(int device) {
  state(device);
  cudaMemPool_t pool;
  CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
  uint64_t zero = 0;  // the only value these attributes accept: resets the high-water marks
  CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReservedMemHigh, &zero));
  CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero));
}

}  // namespace sv::cuda
