// N-API glue of the random family (native/random.h).
#include <napi.h>

#include <string>

#include "dispatch.h"
#include "napi_util.h"
#include "random.h"

namespace sv {

// randomNormal(out, seedLow, seedHigh, offset): out receives elements [offset, offset + numel) of
// the standard-normal stream of seed = seedHigh·2^32 + seedLow.
SV_EXPORT(op_random_normal) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  const int64_t seed_low = napi::arg_int(info, 1, "seedLow");
  const int64_t seed_high = napi::arg_int(info, 2, "seedHigh");
  const int64_t offset = napi::arg_int(info, 3, "offset");
  const int device = common_device({out});
  const ExecContext& ctx = op_context(info, device);
  SV_CHECK(seed_low >= 0 && seed_low <= 0xFFFFFFFFLL && seed_high >= 0 && seed_high <= 0xFFFFFFFFLL, "ERR_ARGUMENT",
           "random_normal: the seed words must be 32-bit unsigned integers, got " + std::to_string(seed_low) + " and " +
               std::to_string(seed_high));
  RandomNormalArgs a;
  a.out = out->ref();
  const DType dtype = a.out.dtype;
  SV_CHECK(dtype == DType::f32 || (device != kCpuDevice && (dtype == DType::bf16 || dtype == DType::f16)), "ERR_DTYPE",
           std::string("random_normal: out must be f32 (or bf16/f16 on CUDA), got ") + dtype_name(dtype) + " on " +
               (device == kCpuDevice ? "the CPU" : "CUDA"));
  // Stream positions stay below 2^53 so every element index is exact in JavaScript too.
  SV_CHECK(offset >= 0 && offset <= (1LL << 53) - a.out.numel(), "ERR_ARGUMENT",
           "random_normal: offset " + std::to_string(offset) + " with " + std::to_string(a.out.numel()) +
               " elements leaves the stream range [0, 2^53)");
  a.seed = (static_cast<uint64_t>(seed_high) << 32) | static_cast<uint64_t>(seed_low);
  a.offset = static_cast<uint64_t>(offset);
  if (device == kCpuDevice) {
    run_on_cpu({out}, [ctx, a] { cpu::random_normal(ctx, a); });
  } else {
    SV_CUDA(cuda::random_normal(ctx, a));
  }
  return info.Env().Undefined();
}

void register_random_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("randomNormal", Napi::Function::New(env, op_random_normal));
}

}  // namespace sv
