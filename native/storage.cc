#include "storage.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "environment.h"
#include "error.h"
#ifdef SV_WITH_CUDA
#include "../cuda/runtime_api.h"
#endif

namespace sv {
namespace {

struct Counters {
  std::atomic<int64_t> in_use{0}, peak{0}, blocks{0};
};

Counters counters[kMaxCudaDevices + 1];
std::atomic<bool> poison{environment("STEPVIDEO_POISON") == "1"};

Counters& counters_for(int device) {
  SV_CHECK(device >= kCpuDevice && device < kMaxCudaDevices, "ERR_DEVICE", "device index out of range");
  return counters[device + 1];
}

void account(int device, int64_t delta) {
  Counters& c = counters_for(device);
  int64_t now = c.in_use.fetch_add(delta) + delta;
  c.blocks.fetch_add(delta > 0 ? 1 : -1);
  int64_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {
  }
}

}  // namespace

std::shared_ptr<Storage> Storage::create(int device, size_t bytes) {
  counters_for(device);
  // Zero-sized tensors still get a distinct, valid pointer.
  size_t request = bytes == 0 ? 64 : bytes;
  void* data = nullptr;
  if (device == kCpuDevice) {
    size_t rounded = (request + 63) / 64 * 64;
    data = std::aligned_alloc(64, rounded);
    if (data == nullptr) {
      fail("ERR_OOM", "host memory exhausted: could not allocate " + std::to_string(bytes) + " bytes");
    }
    if (poison_enabled()) std::memset(data, 0xff, rounded);
  } else {
#ifdef SV_WITH_CUDA
    data = cuda::alloc(device, request);
    if (poison_enabled()) cuda::memset_async(device, data, 0xff, request);
#else
    fail("ERR_DEVICE", "this build of the addon has no CUDA backend");
#endif
  }
  account(device, static_cast<int64_t>(bytes));
  return std::shared_ptr<Storage>(new Storage(device, data, bytes));
}

std::shared_ptr<Storage> Storage::create_pinned_host(size_t bytes) {
#ifdef SV_WITH_CUDA
  if (cuda::device_count() > 0) {
    void* data = cuda::host_alloc_pinned(bytes == 0 ? 64 : bytes);
    if (poison_enabled()) std::memset(data, 0xff, bytes);
    account(kCpuDevice, static_cast<int64_t>(bytes));
    return std::shared_ptr<Storage>(new Storage(kCpuDevice, data, bytes, true));
  }
#endif
  return create(kCpuDevice, bytes);
}

Storage::~Storage() {
  if (pinned_) {
#ifdef SV_WITH_CUDA
    cuda::host_free_pinned(data_);
#endif
  } else if (device_ == kCpuDevice) {
    std::free(data_);
  } else {
#ifdef SV_WITH_CUDA
    try {
      cuda::free_async(device_, data_);
    } catch (...) {
      // A destructor cannot report; a failing free means the context is already broken and the
      // next call that can report will say so.
    }
#endif
  }
  account(device_, -static_cast<int64_t>(bytes_));
}

MemoryStats memory_stats(int device) {
  Counters& c = counters_for(device);
  return MemoryStats{c.in_use.load(), c.peak.load(), c.blocks.load()};
}

void reset_peak(int device) {
  Counters& c = counters_for(device);
  c.peak.store(c.in_use.load());
}

void set_poison(bool on) { poison.store(on); }
bool poison_enabled() { return poison.load(); }

}  // namespace sv
