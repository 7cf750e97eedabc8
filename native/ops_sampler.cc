// N-API glue of the sampler family (native/sampler.h).
#include <napi.h>

#include <string>

#include "dispatch.h"
#include "napi_util.h"
#include "sampler.h"

namespace sv {
namespace {
bool is_float(DType dtype) { return dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16; }
}  // namespace

// cfgEulerStep(x, velocity, nextInput?, guidance, guidanceScale, dt): x f32 [...] updated in
// place; velocity and nextInput in the model dtype with 2·numel(x) elements under guidance
// ([cond; uncond]), numel(x) without.
SV_EXPORT(op_cfg_euler_step) {
  NativeTensor* x = NativeTensor::unwrap(info[0], "x");
  NativeTensor* velocity = NativeTensor::unwrap(info[1], "velocity");
  NativeTensor* next = optional_tensor(info, 2, "nextInput");
  const int device = common_device({x, velocity, next});
  const ExecContext& ctx = op_context(info, device);
  CfgEulerArgs a;
  a.x = x->ref();
  a.velocity = velocity->ref();
  a.next_input = optional_ref(next);
  a.guidance = napi::arg_bool(info, 3, "guidance");
  a.guidance_scale = static_cast<float>(napi::arg_number(info, 4, "guidanceScale"));
  a.dt = static_cast<float>(napi::arg_number(info, 5, "dt"));
  a.n = a.x.numel();
  const int64_t copies = a.guidance ? 2 : 1;
  SV_CHECK(a.x.dtype == DType::f32, "ERR_DTYPE",
           std::string("cfg_euler_step: the latents x are kept in f32, got ") + dtype_name(a.x.dtype));
  SV_CHECK(is_float(a.velocity.dtype) && (device != kCpuDevice || a.velocity.dtype == DType::f32), "ERR_DTYPE",
           std::string("cfg_euler_step: velocity must be f32 (or bf16/f16 on CUDA), got ") + dtype_name(a.velocity.dtype));
  SV_CHECK(a.velocity.numel() == copies * a.n, "ERR_SHAPE",
           "cfg_euler_step: velocity " + a.velocity.shape_string() + " must hold " + std::to_string(copies) +
               " × the latents' " + std::to_string(a.n) + " elements");
  if (next) {
    SV_CHECK(a.next_input.dtype == a.velocity.dtype, "ERR_DTYPE",
             std::string("cfg_euler_step: nextInput must have the velocity's dtype ") + dtype_name(a.velocity.dtype) +
                 ", got " + dtype_name(a.next_input.dtype));
    SV_CHECK(a.next_input.numel() == copies * a.n, "ERR_SHAPE",
             "cfg_euler_step: nextInput " + a.next_input.shape_string() + " must hold " + std::to_string(copies) +
                 " × the latents' " + std::to_string(a.n) + " elements");
  }
  // x is updated in place: reading velocity or writing nextInput through the same memory would race.
  SV_CHECK(x->storage() != velocity->storage() && (!next || (x->storage() != next->storage() &&
                                                             velocity->storage() != next->storage())),
           "ERR_ARGUMENT", "cfg_euler_step: x, velocity and nextInput must not share memory");
  if (device == kCpuDevice) {
    run_on_cpu({x, velocity, next}, [ctx, a] { cpu::cfg_euler_step(ctx, a); });
  } else {
    SV_CUDA(cuda::cfg_euler_step(ctx, a));
  }
  return info.Env().Undefined();
}

void register_sampler_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("cfgEulerStep", Napi::Function::New(env, op_cfg_euler_step));
}

}  // namespace sv
