// The CUDA runtime of the emulated device: one device, streams and events with their real ordering,
// a stream-ordered memory pool with a capacity, pinned host memory, sticky errors.
//
// Streams are deferred: work is queued and runs only when something waits for it (a stream or event
// synchronisation, a copy into pageable memory, a wait on an event of another stream that is itself
// waited for). Nothing runs "early" because a test happened to be slow, so a missing cross-stream
// wait or a buffer reused before its copy ran shows up every time, not once in a while. Work runs on
// the thread that waits (a libuv worker, never the JavaScript thread in this project), one executor
// at a time, while other threads keep enqueueing.
#include "runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "../../native/environment.h"
#include "sanitizer.h"
#include "simt.h"


struct sv_emu_event;

struct sv_emu_stream {
  struct Op {
    enum class Kind { work, record, wait } kind;
    const char* what;
    std::function<cudaError_t(std::string*)> work;
    std::shared_ptr<sv_emu_event> event;  // record: the event
    uint64_t generation = 0;              // record: which recording of it
    sv_emu_stream* wait_stream = nullptr;  // wait: until that stream has executed wait_position ops
    uint64_t wait_position = 0;
  };
  std::deque<Op> queue;
  uint64_t enqueued = 0, executed = 0;
  bool executing = false;
};

struct sv_emu_event {
  sv_emu_stream* stream = nullptr;  // where it was last recorded (null: never)
  uint64_t position = 0;            // done once stream->executed reaches it
  uint64_t generation = 0;
  bool timing = true;
  double completed_ms = -1.0;       // steady clock at completion of the last recording
};

struct sv_emu_mem_pool {
  uint64_t release_threshold = 0;
};

namespace sv::emu {
namespace {

constexpr int kRuntimeVersion = 13000;

// ---- global state: `state` guards every structure below, `executor` serialises execution ----
std::mutex state;
std::mutex executor;

struct Sticky {
  cudaError_t code = cudaSuccess;
  std::string report;
} sticky;

thread_local cudaError_t last_error = cudaSuccess;
std::string error_text;  // cudaGetErrorString's answer for the sticky error (stable storage)

sv_emu_stream default_stream;
std::set<sv_emu_stream*> streams;
std::map<sv_emu_event*, std::shared_ptr<sv_emu_event>> events;
sv_emu_mem_pool pool_object;
std::map<const void*, int> max_dynamic_shared;  // per kernel, set by cudaFuncSetAttribute
std::map<std::string, int> injections;

// Device memory: every block the pool holds, and the free ones by size.
struct DeviceBlock {
  size_t bytes;
  bool in_use;
  sv_emu_stream* ready_stream;  // a free block is reusable on this stream at once, elsewhere once
  uint64_t ready_position;      // that stream has executed this many ops
};
std::map<void*, DeviceBlock> device_blocks;
std::multimap<size_t, void*> free_blocks;
size_t capacity = [] {
  const std::string mib = ::sv::environment("STEPVIDEO_EMU_MEMORY_MIB");
  return !mib.empty() ? static_cast<size_t>(std::strtoull(mib.c_str(), nullptr, 10)) << 20 : size_t{8} << 30;
}();
size_t reserved = 0, used = 0, reserved_high = 0, used_high = 0;

// Pinned host memory: start -> bytes.
std::map<const unsigned char*, size_t> pinned;

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

cudaError_t fail(cudaError_t code) {
  last_error = code;
  return code;
}

#define SV_EMU_STICKY()                                  \
  do {                                                   \
    if (sticky.code != cudaSuccess) return fail(sticky.code); \
  } while (0)

sv_emu_stream* resolve(cudaStream_t stream) { return stream == nullptr ? &default_stream : stream; }

bool block_ready(const DeviceBlock& b, const sv_emu_stream* stream) {
  return b.ready_stream == nullptr || b.ready_stream == stream || b.ready_stream->executed >= b.ready_position;
}

bool is_pinned(const void* pointer) {
  const unsigned char* p = static_cast<const unsigned char*>(pointer);
  auto it = pinned.upper_bound(p);
  if (it == pinned.begin()) return false;
  --it;
  return p < it->first + it->second;
}

void set_sticky(cudaError_t code, const std::string& report) {
  if (sticky.code != cudaSuccess) return;
  sticky.code = code;
  sticky.report = report;
  std::fprintf(stderr, "stepvideo emulator: the device is lost (%s): %s\n", cudaGetErrorName(code), report.c_str());
}

void enqueue(sv_emu_stream* s, sv_emu_stream::Op op) {
  s->queue.push_back(std::move(op));
  s->enqueued++;
}

// Runs `s` until it has executed `position` ops (or fails). Called with `executor` held and `state`
// not held; takes `state` only to look at queues.
cudaError_t run_until(sv_emu_stream* s, uint64_t position) {
  while (true) {
    sv_emu_stream::Op op;
    {
      std::lock_guard<std::mutex> lock(state);
      if (sticky.code != cudaSuccess) return sticky.code;
      if (s->executed >= position || s->queue.empty()) return cudaSuccess;
      if (s->executing) {
        set_sticky(cudaErrorLaunchFailure, "a cycle of stream waits: a stream waits, through events, for its own later work");
        return sticky.code;
      }
      op = s->queue.front();
      s->executing = true;
    }
    cudaError_t status = cudaSuccess;
    std::string report;
    switch (op.kind) {
      case sv_emu_stream::Op::Kind::wait:
        status = run_until(op.wait_stream, op.wait_position);
        break;
      case sv_emu_stream::Op::Kind::record:
        break;
      case sv_emu_stream::Op::Kind::work:
        status = op.work(&report);
        break;
    }
    std::lock_guard<std::mutex> lock(state);
    s->executing = false;
    if (status != cudaSuccess) {
      set_sticky(status, report.empty() ? std::string(op.what) + " failed" : report);
      return sticky.code;
    }
    if (op.kind == sv_emu_stream::Op::Kind::record && op.event->generation == op.generation) op.event->completed_ms = now_ms();
    s->queue.pop_front();
    s->executed++;
  }
}

cudaError_t synchronize_stream(sv_emu_stream* s) {
  uint64_t position;
  {
    std::lock_guard<std::mutex> lock(state);
    SV_EMU_STICKY();
    position = s->enqueued;
  }
  std::lock_guard<std::mutex> run(executor);
  const cudaError_t status = run_until(s, position);
  return status == cudaSuccess ? cudaSuccess : fail(status);
}

cudaError_t synchronize_all() {
  std::vector<sv_emu_stream*> all;
  {
    std::lock_guard<std::mutex> lock(state);
    all.assign(streams.begin(), streams.end());
  }
  all.push_back(&default_stream);
  for (sv_emu_stream* s : all) {
    const cudaError_t status = synchronize_stream(s);
    if (status != cudaSuccess) return status;
  }
  return cudaSuccess;
}

void release_block(void* pointer, DeviceBlock& b) {
  reserved -= b.bytes;
  SV_ASAN_UNPOISON(pointer, b.bytes);
  std::free(pointer);
}

const char* error_name(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError: return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorECCUncorrectable: return "cudaErrorECCUncorrectable";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchTimeout: return "cudaErrorLaunchTimeout";
    case cudaErrorAssert: return "cudaErrorAssert";
    case cudaErrorHardwareStackError: return "cudaErrorHardwareStackError";
    case cudaErrorIllegalInstruction: return "cudaErrorIllegalInstruction";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorInvalidAddressSpace: return "cudaErrorInvalidAddressSpace";
    case cudaErrorInvalidPc: return "cudaErrorInvalidPc";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorUnknown: return "cudaErrorUnknown";
  }
  return "cudaErrorUnknown";
}

const char* error_description(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    default: return error_name(error);
  }
}

}  // namespace

// ---- emulator-only API (runtime.h) ----

cudaError_t enqueue_host_work(cudaStream_t stream, const char* what, std::function<cudaError_t(std::string*)> work) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  sv_emu_stream::Op op{sv_emu_stream::Op::Kind::work, what, std::move(work), nullptr, 0, nullptr, 0};
  enqueue(resolve(stream), std::move(op));
  return cudaSuccess;
}

void inject_failure(const std::string& site, int after) {
  std::lock_guard<std::mutex> lock(state);
  if (after <= 0) {
    injections.erase(site);
  } else {
    injections[site] = after;
  }
}

bool injected(const char* site) {
  auto it = injections.find(site);
  if (it == injections.end()) return false;
  if (--it->second > 0) return false;
  injections.erase(it);
  return true;
}

void set_memory_capacity(size_t bytes) {
  std::lock_guard<std::mutex> lock(state);
  capacity = bytes;
}

MemoryFigures memory_figures() {
  std::lock_guard<std::mutex> lock(state);
  return MemoryFigures{capacity, reserved, used};
}

int enqueue_launch(const void* kernel, dim3 grid, dim3 block, size_t dynamic_shared_bytes, void* stream_handle,
                   std::function<void()> body, LaunchSite site) {
  std::lock_guard<std::mutex> lock(state);
  if (sticky.code != cudaSuccess) return fail(sticky.code);
  const uint64_t threads = uint64_t{block.x} * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || block.x > 1024 || block.y > 1024 || block.z > 64 || threads > 1024 ||
      grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    return fail(cudaErrorInvalidConfiguration);
  }
  auto limit = max_dynamic_shared.find(kernel);
  const size_t allowed = limit == max_dynamic_shared.end() ? 49152 : static_cast<size_t>(limit->second);
  if (dynamic_shared_bytes > allowed) return fail(cudaErrorInvalidValue);  // more than 48 KiB needs the attribute
  const bool trap = injected("kernel");
  auto plan = std::make_shared<LaunchPlan>();
  plan->grid = grid;
  plan->block = block;
  plan->dynamic_shared = dynamic_shared_bytes;
  plan->body = std::move(body);
  plan->site = site;
  SV_TSAN_RELEASE(plan.get());  // the launch (its arguments) happens before every thread of it
  sv_emu_stream::Op op{sv_emu_stream::Op::Kind::work, "kernel",
                       [plan, trap](std::string* report) -> cudaError_t {
                         if (trap) {
                           *report = "a kernel trapped (an injected fault)";
                           return cudaErrorLaunchFailure;
                         }
                         RunResult result = run_launch(*plan);
                         if (result.report.empty()) return cudaSuccess;
                         *report = result.report;
                         return static_cast<cudaError_t>(result.error);
                       },
                       nullptr, 0, nullptr, 0};
  enqueue(resolve(static_cast<cudaStream_t>(stream_handle)), std::move(op));
  return cudaSuccess;
}

}  // namespace sv::emu

using namespace sv::emu;

// ---- device ----

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof(*prop));
  std::snprintf(prop->name, sizeof(prop->name), "stepvideo emulated GPU (sm_90a on the CPU)");
  std::lock_guard<std::mutex> lock(state);
  prop->totalGlobalMem = capacity;
  prop->sharedMemPerBlock = 49152;
  prop->sharedMemPerBlockOptin = 232448;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  prop->maxThreadsPerBlock = 1024;
  prop->warpSize = 32;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  switch (attribute) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = 49152; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = 132; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = 232448; return cudaSuccess;
  }
  return fail(cudaErrorInvalidValue);
}

cudaError_t cudaDeviceSynchronize() { return synchronize_all(); }

cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = kRuntimeVersion;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* version) {
  *version = kRuntimeVersion;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  *total_bytes = capacity;
  *free_bytes = capacity > reserved ? capacity - reserved : 0;
  return cudaSuccess;
}

cudaError_t cudaGetLastError() {
  std::lock_guard<std::mutex> lock(state);
  if (sticky.code != cudaSuccess) return sticky.code;
  const cudaError_t error = last_error;
  last_error = cudaSuccess;
  return error;
}

cudaError_t cudaPeekAtLastError() {
  std::lock_guard<std::mutex> lock(state);
  return sticky.code != cudaSuccess ? sticky.code : last_error;
}

const char* cudaGetErrorName(cudaError_t error) { return error_name(error); }

const char* cudaGetErrorString(cudaError_t error) {
  std::lock_guard<std::mutex> lock(state);
  if (error == sticky.code && error != cudaSuccess && !sticky.report.empty()) {
    error_text = std::string(error_description(error)) + " [emulated device: " + sticky.report + "]";
    return error_text.c_str();
  }
  return error_description(error);
}

// ---- streams and events ----

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  *stream = new sv_emu_stream();
  streams.insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  // Pending work still runs when waited for; the object itself is kept (streams are few).
  std::lock_guard<std::mutex> lock(state);
  return streams.count(stream) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  const cudaError_t status = synchronize_stream(resolve(stream));
  if (status != cudaSuccess) return status;
  std::lock_guard<std::mutex> lock(state);
  if (pool_object.release_threshold != UINT64_MAX && reserved > pool_object.release_threshold) {
    for (auto it = free_blocks.begin(); it != free_blocks.end() && reserved > pool_object.release_threshold;) {
      DeviceBlock& b = device_blocks.at(it->second);
      if (!block_ready(b, nullptr)) {
        ++it;
        continue;
      }
      release_block(it->second, b);
      device_blocks.erase(it->second);
      it = free_blocks.erase(it);
    }
  }
  return cudaSuccess;
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  if (!events.count(event)) return fail(cudaErrorInvalidResourceHandle);
  if (event->stream == nullptr) return cudaSuccess;  // never recorded: nothing to wait for
  sv_emu_stream::Op op{sv_emu_stream::Op::Kind::wait, "cudaStreamWaitEvent", nullptr, nullptr, 0, event->stream, event->position};
  enqueue(resolve(stream), std::move(op));
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  auto made = std::make_shared<sv_emu_event>();
  made->timing = (flags & cudaEventDisableTiming) == 0;
  events[made.get()] = made;
  *event = made.get();
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  auto it = events.find(event);
  if (it == events.end() || injected("cudaEventRecord")) return fail(cudaErrorInvalidResourceHandle);
  sv_emu_stream* s = resolve(stream);
  event->generation++;
  event->completed_ms = -1.0;
  sv_emu_stream::Op op{sv_emu_stream::Op::Kind::record, "cudaEventRecord", nullptr, it->second, event->generation, nullptr, 0};
  enqueue(s, std::move(op));
  event->stream = s;
  event->position = s->enqueued;
  return cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  if (!events.count(event)) return fail(cudaErrorInvalidResourceHandle);
  if (event->stream == nullptr || event->stream->executed >= event->position) return cudaSuccess;
  return cudaErrorNotReady;  // not an error state: last_error is left alone
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  sv_emu_stream* s;
  uint64_t position;
  {
    std::lock_guard<std::mutex> lock(state);
    SV_EMU_STICKY();
    if (!events.count(event)) return fail(cudaErrorInvalidResourceHandle);
    if (event->stream == nullptr) return cudaSuccess;
    s = event->stream;
    position = event->position;
  }
  std::lock_guard<std::mutex> run(executor);
  const cudaError_t status = run_until(s, position);
  return status == cudaSuccess ? cudaSuccess : fail(status);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  std::lock_guard<std::mutex> lock(state);
  // A pending record keeps the object alive until it has run, as CUDA defers the release.
  return events.erase(event) ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  if (!events.count(start) || !events.count(end)) return fail(cudaErrorInvalidResourceHandle);
  if (!start->timing || !end->timing) return fail(cudaErrorInvalidResourceHandle);
  if (start->completed_ms < 0 || end->completed_ms < 0) return fail(cudaErrorNotReady);
  *ms = static_cast<float>(end->completed_ms - start->completed_ms);
  return cudaSuccess;
}

// ---- memory ----

cudaError_t cudaMallocAsync(void** pointer, size_t bytes, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  sv_emu_stream* s = resolve(stream);
  if (injected("cudaMallocAsync")) return fail(cudaErrorMemoryAllocation);
  if (bytes == 0) bytes = 1;
  void* found = nullptr;
  for (auto [it, end] = free_blocks.equal_range(bytes); it != end; ++it) {
    if (block_ready(device_blocks.at(it->second), s)) {
      found = it->second;
      free_blocks.erase(it);
      break;
    }
  }
  if (found == nullptr) {
    if (reserved + bytes > capacity) return fail(cudaErrorMemoryAllocation);
    if (posix_memalign(&found, 256, bytes) != 0) return fail(cudaErrorMemoryAllocation);
    std::memset(found, 0xff, bytes);  // fresh device memory reads as NaN, never as plausible zeros
    device_blocks[found] = DeviceBlock{bytes, true, nullptr, 0};
    reserved += bytes;
    reserved_high = std::max(reserved_high, reserved);
  } else {
    DeviceBlock& b = device_blocks.at(found);
    b.in_use = true;
    // Usable by this stream's work from here on (it was poisoned when its free ran).
    sv_emu_stream::Op op{sv_emu_stream::Op::Kind::work, "allocation",
                         [found, bytes](std::string*) {
                           SV_ASAN_UNPOISON(found, bytes);
                           return cudaSuccess;
                         },
                         nullptr, 0, nullptr, 0};
    enqueue(s, std::move(op));
  }
  used += bytes;
  used_high = std::max(used_high, used);
  *pointer = found;
  return cudaSuccess;
}

cudaError_t cudaFreeAsync(void* pointer, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  auto it = device_blocks.find(pointer);
  if (it == device_blocks.end() || !it->second.in_use) return fail(cudaErrorInvalidValue);
  sv_emu_stream* s = resolve(stream);
  const size_t bytes = it->second.bytes;
  // In stream order the block becomes garbage: NaN bytes, and poison to AddressSanitizer, so a
  // kernel that reads a freed tensor fails instead of seeing yesterday's values.
  sv_emu_stream::Op op{sv_emu_stream::Op::Kind::work, "cudaFreeAsync",
                       [pointer, bytes](std::string*) {
                         std::memset(pointer, 0xff, bytes);
                         SV_ASAN_POISON(pointer, bytes);
                         return cudaSuccess;
                       },
                       nullptr, 0, nullptr, 0};
  enqueue(s, std::move(op));
  it->second.in_use = false;
  it->second.ready_stream = s;
  it->second.ready_position = s->enqueued;
  free_blocks.emplace(bytes, pointer);
  used -= bytes;
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  sv_emu_stream::Op op{sv_emu_stream::Op::Kind::work, "cudaMemsetAsync",
                       [pointer, value, bytes](std::string*) {
                         std::memset(pointer, value, bytes);
                         return cudaSuccess;
                       },
                       nullptr, 0, nullptr, 0};
  enqueue(resolve(stream), std::move(op));
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  sv_emu_stream* s = resolve(stream);
  uint64_t position = 0;
  {
    std::lock_guard<std::mutex> lock(state);
    SV_EMU_STICKY();
    if (kind == cudaMemcpyHostToDevice && !is_pinned(src)) {
      // Pageable source: CUDA has consumed it when the call returns; take a copy now.
      auto copy = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                               static_cast<const unsigned char*>(src) + bytes);
      sv_emu_stream::Op op{sv_emu_stream::Op::Kind::work, "cudaMemcpyAsync",
                           [dst, copy](std::string*) {
                             std::memcpy(dst, copy->data(), copy->size());
                             return cudaSuccess;
                           },
                           nullptr, 0, nullptr, 0};
      enqueue(s, std::move(op));
      return cudaSuccess;
    }
    sv_emu_stream::Op op{sv_emu_stream::Op::Kind::work, "cudaMemcpyAsync",
                         [dst, src, bytes](std::string*) {
                           std::memmove(dst, src, bytes);
                           return cudaSuccess;
                         },
                         nullptr, 0, nullptr, 0};
    enqueue(s, std::move(op));
    position = s->enqueued;
    // Pageable destination: the copy is synchronous, as CUDA's is.
    if (!(kind == cudaMemcpyDeviceToHost && !is_pinned(dst))) return cudaSuccess;
  }
  std::lock_guard<std::mutex> run(executor);
  const cudaError_t status = run_until(s, position);
  return status == cudaSuccess ? cudaSuccess : fail(status);
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  const cudaError_t status = cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
  return status == cudaSuccess ? synchronize_stream(&default_stream) : status;
}

cudaError_t cudaMemcpyToSymbol(const void* symbol, const void* src, size_t bytes, size_t offset, cudaMemcpyKind) {
  {
    std::lock_guard<std::mutex> lock(state);
    SV_EMU_STICKY();
  }
  std::memcpy(static_cast<unsigned char*>(const_cast<void*>(symbol)) + offset, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** pointer, size_t bytes, unsigned) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  if (bytes == 0) bytes = 1;
  if (posix_memalign(pointer, 4096, bytes) != 0) return fail(cudaErrorMemoryAllocation);
  pinned[static_cast<const unsigned char*>(*pointer)] = bytes;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
  // cudaFreeHost waits for the device, as CUDA's does, so queued copies never read freed memory.
  synchronize_all();
  std::lock_guard<std::mutex> lock(state);
  if (pinned.erase(static_cast<const unsigned char*>(pointer)) == 0) return fail(cudaErrorInvalidValue);
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaHostGetDevicePointer(void** device_pointer, void* host_pointer, unsigned) {
  std::lock_guard<std::mutex> lock(state);
  if (!is_pinned(host_pointer)) return fail(cudaErrorInvalidValue);
  *device_pointer = host_pointer;  // one address space: mapped memory is the same pointer
  return cudaSuccess;
}

cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *pool = &pool_object;
  return cudaSuccess;
}

cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attribute, void* value) {
  std::lock_guard<std::mutex> lock(state);
  const uint64_t v = *static_cast<uint64_t*>(value);
  switch (attribute) {
    case cudaMemPoolAttrReleaseThreshold: pool->release_threshold = v; return cudaSuccess;
    case cudaMemPoolAttrReservedMemHigh:
      if (v != 0) return fail(cudaErrorInvalidValue);
      reserved_high = reserved;
      return cudaSuccess;
    case cudaMemPoolAttrUsedMemHigh:
      if (v != 0) return fail(cudaErrorInvalidValue);
      used_high = used;
      return cudaSuccess;
    default: return fail(cudaErrorInvalidValue);
  }
}

cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t pool, cudaMemPoolAttr attribute, void* value) {
  std::lock_guard<std::mutex> lock(state);
  uint64_t* out = static_cast<uint64_t*>(value);
  switch (attribute) {
    case cudaMemPoolAttrReleaseThreshold: *out = pool->release_threshold; return cudaSuccess;
    case cudaMemPoolAttrReservedMemCurrent: *out = reserved; return cudaSuccess;
    case cudaMemPoolAttrReservedMemHigh: *out = reserved_high; return cudaSuccess;
    case cudaMemPoolAttrUsedMemCurrent: *out = used; return cudaSuccess;
    case cudaMemPoolAttrUsedMemHigh: *out = used_high; return cudaSuccess;
    default: return fail(cudaErrorInvalidValue);
  }
}

cudaError_t cudaMemPoolTrimTo(cudaMemPool_t, size_t keep) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  // Only blocks whose free has run can go back (a queued free still owns its block).
  for (auto it = free_blocks.begin(); it != free_blocks.end() && reserved > keep;) {
    DeviceBlock& b = device_blocks.at(it->second);
    if (b.ready_stream != nullptr && b.ready_stream->executed < b.ready_position) {
      ++it;
      continue;
    }
    void* pointer = it->second;
    release_block(pointer, b);
    device_blocks.erase(pointer);
    it = free_blocks.erase(it);
  }
  return cudaSuccess;
}

cudaError_t sv_emu_func_set_attribute(const void* function, cudaFuncAttribute attribute, int value) {
  std::lock_guard<std::mutex> lock(state);
  SV_EMU_STICKY();
  if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;
  if (value < 0 || value > 232448) return fail(cudaErrorInvalidValue);
  max_dynamic_shared[function] = value;
  return cudaSuccess;
}

namespace sv::emu {
// tma.cc: the emulated cuTensorMapEncodeTiled.
void* tensor_map_encoder();
}  // namespace sv::emu

cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** function, unsigned, unsigned long long,
                                             cudaDriverEntryPointQueryResult* status) {
  if (std::strcmp(symbol, "cuTensorMapEncodeTiled") == 0) {
    *function = sv::emu::tensor_map_encoder();
    if (status) *status = cudaDriverEntryPointSuccess;
    return cudaSuccess;
  }
  *function = nullptr;
  if (status) *status = cudaDriverEntryPointSymbolNotFound;
  return cudaSuccess;
}
