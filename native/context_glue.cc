// N-API glue of the execution context (native/exec_context.h): NativeContext, the JS object behind
// lib/context.ts's ExecutionContext. Every op is a method of it (addon.cc installs the op families
// on its prototype), so an op's glue finds its context as `this`; weight streaming's upload and
// wait are methods too, on the context's copy and work streams.
#include <napi.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dispatch.h"
#include "napi_util.h"

namespace sv {
namespace {

Napi::FunctionReference* constructor = nullptr;

// One of `names` (its index), or ERR_ARGUMENT naming the setting and what it accepts.
int pick(const std::string& value, std::initializer_list<const char*> names, const char* setting) {
  int index = 0;
  std::string accepted;
  for (const char* name : names) {
    if (value == name) return index;
    accepted += (index++ ? ", " : "") + std::string(name);
  }
  fail("ERR_ARGUMENT", std::string("kernel policy: ") + setting + " must be one of " + accepted + ", got '" + value + "'");
}

std::string device_name(int device) { return device == kCpuDevice ? "cpu" : "cuda:" + std::to_string(device); }

#ifdef SV_WITH_CUDA
// An upload's completion event, shared by the JS value that names it and the list below.
struct UploadEvent {
  void* event;
  explicit UploadEvent(void* e) : event(e) {}
  ~UploadEvent() { cuda::event_destroy(event); }
};

// Host sources of uploads still in flight: kept alive until the copy stream has read them, so JS
// may dispose a host tensor right after upload. Pruned (without waiting) on every call.
struct PendingUpload {
  std::shared_ptr<UploadEvent> done;
  std::shared_ptr<Storage> source;
};
std::mutex pending_mutex;
std::vector<PendingUpload> pending_uploads;

// Drops the uploads that have finished, or failed (a device fault: the source will never be read
// again, and the fault is reported by the next call on the device). Never throws.
void prune_uploads() noexcept {
  std::lock_guard<std::mutex> lock(pending_mutex);
  auto finished = [](const PendingUpload& p) { return cuda::event_state(p.done->event) != cuda::EventState::pending; };
  pending_uploads.erase(std::remove_if(pending_uploads.begin(), pending_uploads.end(), finished), pending_uploads.end());
}
#endif

class NativeContext : public Napi::ObjectWrap<NativeContext> {
 public:
  static Napi::Function define(Napi::Env env) {
    // Writable like the op methods addon.cc adds to the prototype (test helpers wrap them all).
    constexpr auto writable = static_cast<napi_property_attributes>(napi_writable | napi_configurable);
    Napi::Function fn = DefineClass(env, "NativeContext",
                                    {
                                        InstanceMethod<&NativeContext::upload>("upload", writable),
                                        InstanceMethod<&NativeContext::wait_for>("waitFor", writable),
                                        InstanceAccessor<&NativeContext::device>("device"),
                                    });
    constructor = new Napi::FunctionReference(Napi::Persistent(fn));
    return fn;
  }

  // new NativeContext(device, attention, hopperSchedule, hopperStages, hopperInAuto, conv, gemm,
  // gemmAutotune, fp8FastAccum): a context on `device` with these kernel choices (lib/kernel-policy.ts
  // makes the arguments; the CPU backend reads none of them).
  explicit NativeContext(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeContext>(info) {
    napi::guarded(info.Env(), [&]() -> Napi::Value {
      const int device = static_cast<int>(napi::arg_int(info, 0, "device"));
      SV_CHECK(device >= kCpuDevice && device < kMaxCudaDevices, "ERR_DEVICE", "no such device " + std::to_string(device));
      KernelPolicy p;
      p.attention = static_cast<AttentionChoice>(pick(napi::arg_string(info, 1, "attention"), {"auto", "generic", "mma", "hopper"}, "attention"));
      p.hopper_schedule = static_cast<HopperSchedule>(pick(napi::arg_string(info, 2, "hopperSchedule"), {"serial", "overlap", "pingpong"}, "hopperSchedule"));
      p.hopper_stages = static_cast<int>(napi::arg_int(info, 3, "hopperStages"));
      SV_CHECK(p.hopper_stages == 2 || p.hopper_stages == 3, "ERR_ARGUMENT", "kernel policy: hopperStages must be 2 or 3, got " + std::to_string(p.hopper_stages));
      p.hopper_in_auto = napi::arg_bool(info, 4, "hopperInAuto");
      p.conv = static_cast<ConvChoice>(pick(napi::arg_string(info, 5, "conv"), {"auto", "wgmma"}, "conv"));
      p.gemm = static_cast<GemmChoice>(pick(napi::arg_string(info, 6, "gemm"), {"auto", "fallback"}, "gemm"));
      p.gemm_autotune = napi::arg_bool(info, 7, "gemmAutotune");
      p.fp8_fast_accum = napi::arg_bool(info, 8, "fp8FastAccum");
      if (device == kCpuDevice) {
        context_ = cpu_context();
        context_.policy = p;
      } else {
#ifdef SV_WITH_CUDA
        context_ = cuda::device_context(device, p);
#else
        fail("ERR_DEVICE", "this build of the addon has no CUDA backend");
#endif
      }
      return info.Env().Undefined();
    });
  }

  static const NativeContext* unwrap(const Napi::Value& value) {
    if (!value.IsObject() || constructor == nullptr || !value.As<Napi::Object>().InstanceOf(constructor->Value())) {
      fail("ERR_ARGUMENT", "ops are methods of an execution context (lib/context.ts); this one was called on something else");
    }
    return Napi::ObjectWrap<NativeContext>::Unwrap(value.As<Napi::Object>());
  }

  const ExecContext& context() const { return context_; }

 private:
  Napi::Value device(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), context_.device); }

  // upload(dst, src) -> event | null: copies src (host, ideally pinned) into dst (same dtype and
  // size, on this context's device) after everything enqueued on the work stream so far has
  // finished, overlapping the work enqueued later. On CUDA the copy runs on the copy stream and
  // the returned event marks its end (hand it to waitFor before using dst); on the CPU it is
  // queued on the executor, which keeps program order, and null is returned.
  Napi::Value upload(const Napi::CallbackInfo& info) {
    return napi::guarded(info.Env(), [&]() -> Napi::Value {
      NativeTensor* dst = NativeTensor::unwrap(info[0], "dst");
      NativeTensor* src = NativeTensor::unwrap(info[1], "src");
      SV_CHECK(src->device() == kCpuDevice, "ERR_DEVICE", "upload: the source must be a host tensor");
      SV_CHECK(dst->device() == context_.device, "ERR_DEVICE",
               "upload: dst is on " + device_name(dst->device()) + ", the context on " + device_name(context_.device));
      SV_CHECK(dst->dtype() == src->dtype() && dst->bytes() == src->bytes(), "ERR_SHAPE",
               "upload: dst " + dst->ref().shape_string() + " " + dtype_name(dst->dtype()) + " and src " +
                   src->ref().shape_string() + " " + dtype_name(src->dtype()) + " differ in dtype or size");
      const TensorRef d = dst->ref(), s = src->ref();
      const size_t bytes = dst->bytes();
      if (context_.device == kCpuDevice) {
        enqueue_on_cpu({dst, src}, [d, s, bytes] { std::memcpy(d.data, s.data, bytes); });
        return info.Env().Null();
      }
#ifdef SV_WITH_CUDA
      prune_uploads();
      auto done = std::make_shared<UploadEvent>(cuda::upload_after_work(context_, d.data, s.data, bytes));
      {
        std::lock_guard<std::mutex> lock(pending_mutex);
        pending_uploads.push_back(PendingUpload{done, src->storage()});
      }
      // The destination is the caller's to keep until work waiting on the event has run (dispose
      // is stream-ordered on the work stream, so waitFor before disposing is enough).
      return Napi::External<std::shared_ptr<UploadEvent>>::New(
          info.Env(), new std::shared_ptr<UploadEvent>(done),
          [](Napi::Env, std::shared_ptr<UploadEvent>* held) { delete held; });
#else
      fail("ERR_DEVICE", "this build of the addon has no CUDA backend");
#endif
    });
  }

  // waitFor(event | null): work enqueued on this context's work stream from now on waits for the upload.
  Napi::Value wait_for(const Napi::CallbackInfo& info) {
    return napi::guarded(info.Env(), [&]() -> Napi::Value {
      if (!napi::arg_present(info, 0) || context_.device == kCpuDevice) return info.Env().Undefined();
      SV_CHECK(info[0].IsExternal(), "ERR_ARGUMENT", "waitFor: 'event' must come from upload");
#ifdef SV_WITH_CUDA
      prune_uploads();
      auto* done = info[0].As<Napi::External<std::shared_ptr<UploadEvent>>>().Data();
      cuda::work_stream_wait(context_, (*done)->event);
#endif
      return info.Env().Undefined();
    });
  }

  ExecContext context_;
};

}  // namespace

const ExecContext& op_context(const Napi::CallbackInfo& info, int device) {
  const ExecContext& ctx = NativeContext::unwrap(info.This())->context();
  SV_CHECK(ctx.device == device, "ERR_DEVICE",
           "the op's tensors are on " + device_name(device) + ", its execution context is for " + device_name(ctx.device));
  return ctx;
}

Napi::Function define_context_class(Napi::Env env) { return NativeContext::define(env); }

}  // namespace sv
