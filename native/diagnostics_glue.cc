// N-API glue of the diagnostics: op counts per device, the CPU executor's queue length, the CUDA
// memory pool's reserved/used bytes and staging buffers, device faults (and a kernel that causes
// one, for tests), the cuBLASLt plans (autotuning results), and the emulated device's test hooks.
#include <napi.h>

#include <string>

#include "dispatch.h"
#ifdef SV_CUDA_EMULATED
#include "../cuda/emulator/hooks.h"
#endif
#include "linear.h"
#include "napi_util.h"

// A CUDA runtime call that is not an op (not counted), or ERR_DEVICE in CPU-only builds.
#ifdef SV_WITH_CUDA
#define SV_CUDA_ONLY(expr) (expr)
#else
#define SV_CUDA_ONLY(expr) ::sv::fail("ERR_DEVICE", "this build of the addon has no CUDA backend")
#endif

namespace sv {
namespace {


int checked_device(const Napi::CallbackInfo& info, size_t index) {
  int device = static_cast<int>(napi::arg_int(info, index, "device"));
  SV_CHECK(device >= kCpuDevice && device < kMaxCudaDevices, "ERR_DEVICE", "no such device " + std::to_string(device));
  return device;
}

}  // namespace

// opCount(device): ops enqueued on the device since the process started.
SV_EXPORT(op_count) {
  int device = checked_device(info, 0);
  return Napi::Number::New(info.Env(), static_cast<double>(op_counts[device + 1].load()));
}

// cpuPendingJobs(): jobs queued on the CPU executor and not yet finished (their storages alive).
SV_EXPORT(cpu_pending_jobs) { return Napi::Number::New(info.Env(), static_cast<double>(executor::pending())); }

// cudaPoolStats(device) -> { reservedBytes, reservedHighBytes, usedBytes, usedHighBytes }
SV_EXPORT(cuda_pool_stats) {
  int device = checked_device(info, 0);
  SV_CHECK(device >= 0, "ERR_DEVICE", "cudaPoolStats: the CPU has no CUDA memory pool");
#ifdef SV_WITH_CUDA
  cuda::PoolStats stats;
  cuda::pool_stats(device, &stats);
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("reservedBytes", Napi::Number::New(info.Env(), static_cast<double>(stats.reserved_current)));
  result.Set("reservedHighBytes", Napi::Number::New(info.Env(), static_cast<double>(stats.reserved_high)));
  result.Set("usedBytes", Napi::Number::New(info.Env(), static_cast<double>(stats.used_current)));
  result.Set("usedHighBytes", Napi::Number::New(info.Env(), static_cast<double>(stats.used_high)));
  return result;
#else
  fail("ERR_DEVICE", "this build of the addon has no CUDA backend");
#endif
}

SV_EXPORT(cuda_reset_pool_high) {
  int device = checked_device(info, 0);
  SV_CHECK(device >= 0, "ERR_DEVICE", "cudaResetPoolHigh: the CPU has no CUDA memory pool");
  SV_CUDA_ONLY(cuda::reset_pool_high(device));
  return info.Env().Undefined();
}

#ifdef SV_WITH_CUDA
class TrimWorker : public napi::PromiseWorker {
 public:
  TrimWorker(Napi::Env env, int device) : PromiseWorker(env), device_(device) {}

 protected:
  void run() override { cuda::trim_pool(device_); }

 private:
  int device_;
};
#endif

// cudaTrimPool(device) -> Promise: waits for the device (on a worker thread), then returns the
// pool's unused memory to the driver, so the driver's free figure is what an allocation of any
// size can get.
SV_EXPORT(cuda_trim_pool) {
  int device = checked_device(info, 0);
  SV_CHECK(device >= 0, "ERR_DEVICE", "cudaTrimPool: the CPU has no CUDA memory pool");
#ifdef SV_WITH_CUDA
  return napi::start(new TrimWorker(info.Env(), device));
#else
  fail("ERR_DEVICE", "this build of the addon has no CUDA backend");
#endif
}

// cudaDeviceFault(device) -> the first GPU fault that made the device unusable, or "" (healthy).
SV_EXPORT(cuda_device_fault) {
  int device = checked_device(info, 0);
#ifdef SV_WITH_CUDA
  return Napi::String::New(info.Env(), device >= 0 ? cuda::device_fault(device) : "");
#else
  return Napi::String::New(info.Env(), "");
#endif
}

// debugFaultDevice(device): launches a kernel that traps, the way a kernel bug faults a GPU. The
// device is unusable for the rest of the process afterwards: only for tests of the fault path,
// in a process of their own.
SV_EXPORT(debug_fault_device) {
  int device = checked_device(info, 0);
  SV_CHECK(device >= 0, "ERR_DEVICE", "debugFaultDevice: needs a CUDA device");
  SV_CUDA_ONLY(cuda::launch_fault(cuda::device_context(device, KernelPolicy{})));
  return info.Env().Undefined();
}

// cudaStagingStats() -> { allocations, reuses, cachedBytes }: the pinned staging buffers of reads,
// writes and transfers (a steady state reuses them and page-locks nothing new).
SV_EXPORT(cuda_staging_stats) {
  Napi::Object result = Napi::Object::New(info.Env());
#ifdef SV_WITH_CUDA
  const cuda::StagingStats stats = cuda::staging_stats();
  result.Set("allocations", Napi::Number::New(info.Env(), static_cast<double>(stats.allocations)));
  result.Set("reuses", Napi::Number::New(info.Env(), static_cast<double>(stats.reuses)));
  result.Set("cachedBytes", Napi::Number::New(info.Env(), static_cast<double>(stats.cached_bytes)));
#endif
  return result;
}

#ifdef SV_CUDA_EMULATED
// The emulated device's test hooks (emulated builds only): emulatorInjectFailure(site, after) makes
// the after-th next call of a runtime site fail ("cudaMallocAsync", "kernel", "cublasLtCreate",
// "cudaEventRecord"); emulatorSetMemoryCapacity(bytes); emulatorMemory() -> { capacity, reserved, used }.
SV_EXPORT(emulator_inject_failure) {
  emu::inject_failure(napi::arg_string(info, 0, "site"), static_cast<int>(napi::arg_int(info, 1, "after")));
  return info.Env().Undefined();
}
SV_EXPORT(emulator_set_memory_capacity) {
  const int64_t bytes = napi::arg_int(info, 0, "bytes");
  SV_CHECK(bytes > 0, "ERR_ARGUMENT", "emulatorSetMemoryCapacity: bytes must be positive");
  emu::set_memory_capacity(static_cast<size_t>(bytes));
  return info.Env().Undefined();
}
SV_EXPORT(emulator_memory) {
  const emu::MemoryFigures figures = emu::memory_figures();
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("capacity", Napi::Number::New(info.Env(), static_cast<double>(figures.capacity)));
  result.Set("reserved", Napi::Number::New(info.Env(), static_cast<double>(figures.reserved)));
  result.Set("used", Napi::Number::New(info.Env(), static_cast<double>(figures.used)));
  return result;
}
#endif

// gemmPlans() -> [{ kind, m, n, k, batch, candidates, chosen, candidateMs }]: every cuBLASLt plan
// made so far on any device, with what autotuning measured (empty on CPU-only builds).
SV_EXPORT(gemm_plans) {
  Napi::Array result = Napi::Array::New(info.Env());
#ifdef SV_WITH_CUDA
  uint32_t i = 0;
  for (const GemmPlanInfo& plan : cuda::gemm_plans()) {
    Napi::Object item = Napi::Object::New(info.Env());
    item.Set("kind", Napi::String::New(info.Env(), plan.kind));
    item.Set("device", Napi::Number::New(info.Env(), plan.device));
    item.Set("m", Napi::Number::New(info.Env(), static_cast<double>(plan.m)));
    item.Set("n", Napi::Number::New(info.Env(), static_cast<double>(plan.n)));
    item.Set("k", Napi::Number::New(info.Env(), static_cast<double>(plan.k)));
    item.Set("batch", Napi::Number::New(info.Env(), static_cast<double>(plan.batch)));
    item.Set("candidates", Napi::Number::New(info.Env(), plan.candidates));
    item.Set("chosen", Napi::Number::New(info.Env(), plan.chosen));
    item.Set("tuned", Napi::Boolean::New(info.Env(), plan.tuned));
    Napi::Array times = Napi::Array::New(info.Env(), plan.candidate_ms.size());
    for (uint32_t j = 0; j < plan.candidate_ms.size(); j++) times.Set(j, Napi::Number::New(info.Env(), plan.candidate_ms[j]));
    item.Set("candidateMs", times);
    result.Set(i++, item);
  }
#endif
  return result;
}

void register_diagnostics_functions(Napi::Env env, Napi::Object exports) {
  exports.Set("opCount", Napi::Function::New(env, op_count));
  exports.Set("cpuPendingJobs", Napi::Function::New(env, cpu_pending_jobs));
  exports.Set("cudaPoolStats", Napi::Function::New(env, cuda_pool_stats));
  exports.Set("cudaResetPoolHigh", Napi::Function::New(env, cuda_reset_pool_high));
  exports.Set("cudaTrimPool", Napi::Function::New(env, cuda_trim_pool));
  exports.Set("cudaDeviceFault", Napi::Function::New(env, cuda_device_fault));
  exports.Set("debugFaultDevice", Napi::Function::New(env, debug_fault_device));
  exports.Set("cudaStagingStats", Napi::Function::New(env, cuda_staging_stats));
#ifdef SV_CUDA_EMULATED
  exports.Set("emulatorInjectFailure", Napi::Function::New(env, emulator_inject_failure));
  exports.Set("emulatorSetMemoryCapacity", Napi::Function::New(env, emulator_set_memory_capacity));
  exports.Set("emulatorMemory", Napi::Function::New(env, emulator_memory));
#endif
  exports.Set("gemmPlans", Napi::Function::New(env, gemm_plans));
}

}  // namespace sv
