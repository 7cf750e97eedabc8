// N-API glue for moving data: host arrays into tensors, tensors back to host arrays (async),
// transfers between devices (async), device synchronisation, memory statistics, device queries.
#include <napi.h>

#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "cpu/convert.h"
#include "cpu/parallel.h"
#include "dispatch.h"
#include "napi_util.h"
#ifdef SV_WITH_CUDA
#include "../cuda/cublaslt.h"
#include "../cuda/nccl.h"
#endif

namespace sv {
namespace {

// The bytes of a TypedArray, DataView or ArrayBuffer argument.
void array_bytes(const Napi::Value& value, const char* what, const uint8_t** data, size_t* length) {
  if (value.IsTypedArray()) {
    Napi::TypedArray array = value.As<Napi::TypedArray>();
    Napi::ArrayBuffer buffer = array.ArrayBuffer();
    *data = static_cast<const uint8_t*>(buffer.Data()) + array.ByteOffset();
    *length = array.ByteLength();
  } else if (value.IsDataView()) {
    Napi::DataView view = value.As<Napi::DataView>();
    *data = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    *length = view.ByteLength();
  } else if (value.IsArrayBuffer()) {
    Napi::ArrayBuffer buffer = value.As<Napi::ArrayBuffer>();
    *data = static_cast<const uint8_t*>(buffer.Data());
    *length = buffer.ByteLength();
  } else {
    fail("ERR_ARGUMENT", std::string("'") + what + "' must be a TypedArray, DataView or ArrayBuffer");
  }
}

// Waits for the work queued on `device` so far: the CPU executor's fence, or a CUDA event.
class DeviceWait {
 public:
  explicit DeviceWait(int device) : device_(device) {
    if (device == kCpuDevice) {
      fence_ = executor::fence();
    } else {
#ifdef SV_WITH_CUDA
      event_ = cuda::event_record(device);
#endif
    }
  }
  DeviceWait(const DeviceWait&) = delete;
  DeviceWait& operator=(const DeviceWait&) = delete;
  ~DeviceWait() {
#ifdef SV_WITH_CUDA
    cuda::event_destroy(event_);
#endif
  }
  // Blocks the calling (worker) thread; rethrows a failure of the queued work.
  void wait() {
    if (device_ == kCpuDevice) {
      fence_.get();
    } else {
#ifdef SV_WITH_CUDA
      cuda::event_wait(event_);
#endif
    }
  }

 private:
  int device_;
  std::future<void> fence_;
  void* event_ = nullptr;
};

class SyncWorker : public napi::PromiseWorker {
 public:
  SyncWorker(Napi::Env env, int device) : PromiseWorker(env), wait_(device) {}

 protected:
  void run() override { wait_.wait(); }

 private:
  DeviceWait wait_;
};

// Reads a tensor into a fresh ArrayBuffer. The device-to-host copy is enqueued at call time (so
// it is ordered after the ops that produce the tensor); the worker thread only waits and copies.
// On CUDA the copy goes through a pinned staging buffer, released with the copy's own event.
class ReadWorker : public napi::PromiseWorker {
 public:
  ReadWorker(Napi::Env env, NativeTensor* tensor) : PromiseWorker(env), storage_(tensor->storage()) {
    TensorRef ref = tensor->ref();
    bytes_ = ref.bytes();
    buffer_ = Napi::Persistent(Napi::ArrayBuffer::New(env, bytes_ == 0 ? 1 : bytes_));
    target_ = buffer_.Value().Data();
    if (ref.device == kCpuDevice) {
      auto done = std::make_shared<std::promise<void>>();
      ready_ = done->get_future();
      void* target = target_;
      const void* source = ref.data;
      size_t bytes = bytes_;
      enqueue_on_cpu({tensor}, [done, target, source, bytes] {
        std::memcpy(target, source, bytes);
        done->set_value();
      });
      fence_ = executor::fence();
    } else {
#ifdef SV_WITH_CUDA
      device_ = ref.device;
      staging_ = std::make_unique<cuda::StagingHold>(bytes_);
      cuda::copy_async(ref.device, staging_->data(), ref.data, bytes_, cuda::CopyKind::device_to_host);
      staging_->copied_on(ref.device);
#endif
    }
  }

 protected:
  void run() override {
    if (device_ == kCpuDevice) {
      ready_.get();
      fence_.get();  // surfaces a failure of an op that produced this tensor
    } else {
#ifdef SV_WITH_CUDA
      cuda::event_wait(staging_->event());
      std::memcpy(target_, staging_->data(), bytes_);
#endif
    }
  }
  Napi::Value result(Napi::Env env) override {
    Napi::ArrayBuffer buffer = buffer_.Value();
    buffer_.Reset();
    if (bytes_ == 0) return Napi::ArrayBuffer::New(env, 0);
    return buffer;
  }

 private:
  std::shared_ptr<Storage> storage_;
  size_t bytes_ = 0;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
  void* target_ = nullptr;
  int device_ = kCpuDevice;
  std::future<void> ready_, fence_;
#ifdef SV_WITH_CUDA
  std::unique_ptr<cuda::StagingHold> staging_;
#endif
};

// Copies a tensor to a tensor of the same dtype and size on another device.
class TransferWorker : public napi::PromiseWorker {
 public:
  TransferWorker(Napi::Env env, NativeTensor* dst, NativeTensor* src)
      : PromiseWorker(env), dst_(dst->ref()), src_(src->ref()), keep_dst_(dst->storage()), keep_src_(src->storage()),
        src_wait_(src->device()) {
#ifdef SV_WITH_CUDA
    if (src_.device != kCpuDevice) {
      staging_ = std::make_unique<cuda::StagingHold>(src_.bytes());
      cuda::copy_async(src_.device, staging_->data(), src_.data, src_.bytes(), cuda::CopyKind::device_to_host);
      staging_->copied_on(src_.device);
    }
#endif
  }

 protected:
  void run() override {
    src_wait_.wait();
#ifdef SV_WITH_CUDA
    if (src_.device != kCpuDevice) {
      cuda::event_wait(staging_->event());
      if (dst_.device == kCpuDevice) {
        std::memcpy(dst_.data, staging_->data(), src_.bytes());
      } else {
        cuda::copy_async(dst_.device, dst_.data, staging_->data(), src_.bytes(), cuda::CopyKind::host_to_device);
        staging_->copied_on(dst_.device);
        cuda::event_wait(staging_->event());
      }
      return;
    }
    if (dst_.device != kCpuDevice) {  // host to device through a staging buffer
      cuda::StagingHold staging(src_.bytes());
      std::memcpy(staging.data(), src_.data, src_.bytes());
      cuda::copy_async(dst_.device, dst_.data, staging.data(), src_.bytes(), cuda::CopyKind::host_to_device);
      staging.copied_on(dst_.device);
      cuda::event_wait(staging.event());
      return;
    }
#endif
    std::memcpy(dst_.data, src_.data, src_.bytes());
  }

 private:
  TensorRef dst_, src_;
  std::shared_ptr<Storage> keep_dst_, keep_src_;
  DeviceWait src_wait_;
#ifdef SV_WITH_CUDA
  std::unique_ptr<cuda::StagingHold> staging_;
#endif
};

}  // namespace

// write(tensor, data, srcDtype): copies host bytes into a tensor, converting from srcDtype.
// The bytes are copied before returning, so the caller may reuse its array at once.
SV_EXPORT(tensor_write) {
  NativeTensor* tensor = NativeTensor::unwrap(info[0], "tensor");
  const uint8_t* data = nullptr;
  size_t length = 0;
  array_bytes(info[1], "data", &data, &length);
  int64_t src_code = napi::arg_int(info, 2, "srcDtype");
  SV_CHECK(dtype_valid(static_cast<int32_t>(src_code)), "ERR_DTYPE", "unknown dtype code");
  DType src_dtype = static_cast<DType>(src_code);
  TensorRef ref = tensor->ref();
  size_t expected = static_cast<size_t>(ref.numel()) * dtype_size(src_dtype);
  SV_CHECK(length == expected, "ERR_SHAPE",
           "write: expected " + std::to_string(expected) + " bytes of " + dtype_name(src_dtype) + " for a tensor " +
               ref.shape_string() + ", got " + std::to_string(length));
  if (ref.device == kCpuDevice) {
    auto copy = std::make_shared<std::vector<uint8_t>>(data, data + length);
    enqueue_on_cpu({tensor}, [copy, ref, src_dtype] { cpu::convert(ref.data, ref.dtype, copy->data(), src_dtype, ref.numel()); });
  } else {
#ifdef SV_WITH_CUDA
    cuda::StagingHold staging(ref.bytes());
    cpu::convert(staging.data(), ref.dtype, data, src_dtype, ref.numel());
    cuda::copy_async(ref.device, ref.data, staging.data(), ref.bytes(), cuda::CopyKind::host_to_device);
    staging.copied_on(ref.device);
#else
    fail("ERR_DEVICE", "this build of the addon has no CUDA backend");
#endif
  }
  return info.Env().Undefined();
}

SV_EXPORT(tensor_read) {
  NativeTensor* tensor = NativeTensor::unwrap(info[0], "tensor");
  return napi::start(new ReadWorker(info.Env(), tensor));
}

// transfer(dst, src): dst on another device, same dtype and element count. Returns a promise.
SV_EXPORT(tensor_transfer) {
  NativeTensor* dst = NativeTensor::unwrap(info[0], "dst");
  NativeTensor* src = NativeTensor::unwrap(info[1], "src");
  SV_CHECK(dst->dtype() == src->dtype() && dst->bytes() == src->bytes(), "ERR_SHAPE",
           "transfer: dst and src must have the same dtype and size");
  if (dst->device() == src->device()) fail("ERR_ARGUMENT", "transfer: source and destination are on one device");
  return napi::start(new TransferWorker(info.Env(), dst, src));
}

SV_EXPORT(device_synchronize) {
  int device = static_cast<int>(napi::arg_int(info, 0, "device"));
  SV_CHECK(device >= kCpuDevice && device < kMaxCudaDevices, "ERR_DEVICE", "no such device " + std::to_string(device));
  return napi::start(new SyncWorker(info.Env(), device));
}

SV_EXPORT(device_memory_stats) {
  int device = static_cast<int>(napi::arg_int(info, 0, "device"));
  MemoryStats stats = memory_stats(device);
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("bytesInUse", Napi::Number::New(info.Env(), static_cast<double>(stats.bytes_in_use)));
  result.Set("peakBytes", Napi::Number::New(info.Env(), static_cast<double>(stats.peak_bytes)));
  result.Set("liveBlocks", Napi::Number::New(info.Env(), static_cast<double>(stats.live_blocks)));
  return result;
}

SV_EXPORT(device_reset_peak) {
  reset_peak(static_cast<int>(napi::arg_int(info, 0, "device")));
  return info.Env().Undefined();
}

SV_EXPORT(cuda_device_count) {
#ifdef SV_WITH_CUDA
  return Napi::Number::New(info.Env(), cuda::device_count());
#else
  return Napi::Number::New(info.Env(), 0);
#endif
}

SV_EXPORT(cuda_unavailable_reason) {
#ifdef SV_WITH_CUDA
  return Napi::String::New(info.Env(), cuda::unavailable_reason());
#else
  return Napi::String::New(info.Env(), "this build of the addon has no CUDA backend (nvcc was not found at build time)");
#endif
}

// cudaVersions() -> { runtime, driver, driverRelease, driverMinimum }: CUDA versions as numbers
// (13000 = 13.0; driver 0 = no driver), the kernel module's release and the one the runtime needs.
SV_EXPORT(cuda_versions) {
  Napi::Object result = Napi::Object::New(info.Env());
#ifdef SV_WITH_CUDA
  const cuda::VersionInfo v = cuda::versions();
  result.Set("runtime", Napi::Number::New(info.Env(), v.runtime));
  result.Set("driver", Napi::Number::New(info.Env(), v.driver));
  result.Set("driverRelease", Napi::String::New(info.Env(), v.driver_release));
  result.Set("driverMinimum", Napi::String::New(info.Env(), v.driver_minimum));
#else
  result.Set("runtime", Napi::Number::New(info.Env(), 0));
  result.Set("driver", Napi::Number::New(info.Env(), 0));
  result.Set("driverRelease", Napi::String::New(info.Env(), ""));
  result.Set("driverMinimum", Napi::String::New(info.Env(), ""));
#endif
  return result;
}

// The optional libraries loaded at run time: 'cublasLt' (cuda/cublaslt.h) and 'nccl' (cuda/nccl.h).
static int optional_library(const Napi::CallbackInfo& info) {
  const std::string name = napi::arg_string(info, 0, "library");
  SV_CHECK(name == "cublasLt" || name == "nccl", "ERR_ARGUMENT", "unknown library '" + name + "': cublasLt or nccl");
  return name == "nccl" ? 1 : 0;
}

// libraryInfo(name) -> { path, why, version }: where the library was loaded from (searched and
// loaded on the first call; path null when it was not, `why` then says what was tried), and its
// version (NCCL's, e.g. 22704; 0 where not known).
SV_EXPORT(library_info) {
  const int library = optional_library(info);
  Napi::Object result = Napi::Object::New(info.Env());
#ifdef SV_WITH_CUDA
  std::string path, why;
  int version = 0;
  if (library == 0) {
    const cuda::CublasLtInfo lt = cuda::cublaslt_info();
    path = lt.path, why = lt.why;
  } else {
    const cuda::NcclInfo nccl = cuda::nccl_info();
    path = nccl.path, why = nccl.why, version = nccl.version;
  }
  result.Set("path", path.empty() ? info.Env().Null() : Napi::String::New(info.Env(), path));
  result.Set("why", Napi::String::New(info.Env(), why));
  result.Set("version", Napi::Number::New(info.Env(), version));
#else
  (void)library;
  result.Set("path", info.Env().Null());
  result.Set("why", Napi::String::New(info.Env(), "this build of the addon has no CUDA backend"));
  result.Set("version", Napi::Number::New(info.Env(), 0));
#endif
  return result;
}

// debugLibraryCandidates(name) -> string[]: where the library is looked for, in order, with the
// environment as it is now (tests of the search; [] without CUDA).
SV_EXPORT(debug_library_candidates) {
  const int library = optional_library(info);
  Napi::Array result = Napi::Array::New(info.Env());
#ifdef SV_WITH_CUDA
  const std::vector<std::string> candidates = library == 0 ? cuda::cublaslt_candidates() : cuda::nccl_candidates();
  for (size_t i = 0; i < candidates.size(); ++i) result.Set(static_cast<uint32_t>(i), Napi::String::New(info.Env(), candidates[i]));
#else
  (void)library;
#endif
  return result;
}

SV_EXPORT(cuda_device_info) {
  int device = static_cast<int>(napi::arg_int(info, 0, "device"));
#ifdef SV_WITH_CUDA
  cuda::DeviceInfo di;
  cuda::device_info(device, &di);
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("name", Napi::String::New(info.Env(), di.name));
  result.Set("computeCapability", Napi::String::New(info.Env(), std::to_string(di.major) + "." + std::to_string(di.minor)));
  result.Set("multiprocessors", Napi::Number::New(info.Env(), di.sm_count));
  result.Set("totalBytes", Napi::Number::New(info.Env(), static_cast<double>(di.total_bytes)));
  result.Set("freeBytes", Napi::Number::New(info.Env(), static_cast<double>(di.free_bytes)));
  return result;
#else
  fail("ERR_DEVICE", "no CUDA device cuda:" + std::to_string(device) + ": this build of the addon has no CUDA backend");
#endif
}

SV_EXPORT(set_poison_flag) {
  set_poison(napi::arg_bool(info, 0, "on"));
  return info.Env().Undefined();
}

SV_EXPORT(cpu_thread_count) { return Napi::Number::New(info.Env(), cpu::thread_count()); }

SV_EXPORT(set_error_factory_fn) {
  SV_CHECK(info.Length() >= 1 && info[0].IsFunction(), "ERR_ARGUMENT", "setErrorFactory expects a function");
  napi::set_error_factory(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

void register_device_functions(Napi::Env env, Napi::Object exports) {
  exports.Set("write", Napi::Function::New(env, tensor_write));
  exports.Set("read", Napi::Function::New(env, tensor_read));
  exports.Set("transfer", Napi::Function::New(env, tensor_transfer));
  exports.Set("synchronize", Napi::Function::New(env, device_synchronize));
  exports.Set("memoryStats", Napi::Function::New(env, device_memory_stats));
  exports.Set("resetPeak", Napi::Function::New(env, device_reset_peak));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, cuda_device_count));
  exports.Set("cudaUnavailableReason", Napi::Function::New(env, cuda_unavailable_reason));
  exports.Set("cudaDeviceInfo", Napi::Function::New(env, cuda_device_info));
  exports.Set("cudaVersions", Napi::Function::New(env, cuda_versions));
  exports.Set("libraryInfo", Napi::Function::New(env, library_info));
  exports.Set("debugLibraryCandidates", Napi::Function::New(env, debug_library_candidates));
  exports.Set("setPoison", Napi::Function::New(env, set_poison_flag));
  exports.Set("cpuThreadCount", Napi::Function::New(env, cpu_thread_count));
  exports.Set("setErrorFactory", Napi::Function::New(env, set_error_factory_fn));
}

}  // namespace sv
