// N-API glue of the normalisation family (native/norm.h).
#include <napi.h>

#include "dispatch.h"
#include "napi_util.h"
#include "norm.h"

namespace sv {
// layerNorm(out, x, weight?, bias?, scale?, shift?, eps)
//   x, out [..., dim]; weight/bias [dim]; scale/shift [groups, dim], rows split evenly into groups.
SV_EXPORT(op_layer_norm) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* x = NativeTensor::unwrap(info[1], "x");
  NativeTensor* weight = optional_tensor(info, 2, "weight");
  NativeTensor* bias = optional_tensor(info, 3, "bias");
  NativeTensor* scale = optional_tensor(info, 4, "scale");
  NativeTensor* shift = optional_tensor(info, 5, "shift");
  const int device = common_device({out, x, weight, bias, scale, shift});
  const ExecContext& ctx = op_context(info, device);
  LayerNormArgs a;
  a.out = out->ref();
  a.x = x->ref();
  a.weight = optional_ref(weight);
  a.bias = optional_ref(bias);
  a.scale = optional_ref(scale);
  a.shift = optional_ref(shift);
  a.eps = static_cast<float>(napi::arg_number(info, 6, "eps"));
  SV_CHECK(a.x.ndim >= 1 && out->shape() == x->shape(), "ERR_SHAPE",
           "layer_norm: out " + a.out.shape_string() + " must equal x " + a.x.shape_string());
  a.dim = a.x.size(-1);
  a.rows = a.x.outer(-1);
  require_dtype("layer_norm", x->dtype(), {{"out", out}, {"weight", weight}, {"bias", bias}, {"scale", scale}, {"shift", shift}});
  require_numel("layer_norm", a.dim, {{"weight", weight}, {"bias", bias}});
  SV_CHECK((scale == nullptr) == (shift == nullptr), "ERR_ARGUMENT", "layer_norm: scale and shift come together");
  if (scale) {
    SV_CHECK(a.scale.ndim == 2 && a.scale.shape[1] == a.dim && a.shift.ndim == 2 && a.shift.shape[0] == a.scale.shape[0] &&
                 a.shift.shape[1] == a.dim && a.scale.shape[0] > 0 && a.rows % a.scale.shape[0] == 0,
             "ERR_SHAPE", "layer_norm: scale/shift must be [groups, " + std::to_string(a.dim) + "] with groups dividing " +
                              std::to_string(a.rows) + " rows, got " + a.scale.shape_string() + " and " + a.shift.shape_string());
    a.rows_per_group = a.rows / a.scale.shape[0];
  }
  if (device == kCpuDevice) {
    run_on_cpu({out, x, weight, bias, scale, shift}, [ctx, a] { cpu::layer_norm(ctx, a); });
  } else {
    SV_CUDA(cuda::layer_norm(ctx, a));
  }
  return info.Env().Undefined();
}

// rmsNorm(out, x, weight?, eps)
SV_EXPORT(op_rms_norm) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* x = NativeTensor::unwrap(info[1], "x");
  NativeTensor* weight = optional_tensor(info, 2, "weight");
  const int device = common_device({out, x, weight});
  const ExecContext& ctx = op_context(info, device);
  RmsNormArgs a;
  a.out = out->ref();
  a.x = x->ref();
  a.weight = optional_ref(weight);
  a.eps = static_cast<float>(napi::arg_number(info, 3, "eps"));
  SV_CHECK(a.x.ndim >= 1 && out->shape() == x->shape(), "ERR_SHAPE",
           "rms_norm: out " + a.out.shape_string() + " must equal x " + a.x.shape_string());
  a.dim = a.x.size(-1);
  a.rows = a.x.outer(-1);
  require_dtype("rms_norm", x->dtype(), {{"out", out}, {"weight", weight}});
  require_numel("rms_norm", a.dim, {{"weight", weight}});
  if (device == kCpuDevice) {
    run_on_cpu({out, x, weight}, [ctx, a] { cpu::rms_norm(ctx, a); });
  } else {
    SV_CUDA(cuda::rms_norm(ctx, a));
  }
  return info.Env().Undefined();
}

// groupNorm(out, x, weight, bias, groups, eps, silu): x [frames, H, W, C] channels-last (any
// leading dims folded into frames: x is viewed as [frames, pixels, C] with pixels = shape[-3]·shape[-2]).
SV_EXPORT(op_group_norm) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* x = NativeTensor::unwrap(info[1], "x");
  NativeTensor* weight = NativeTensor::unwrap(info[2], "weight");
  NativeTensor* bias = NativeTensor::unwrap(info[3], "bias");
  const int device = common_device({out, x, weight, bias});
  const ExecContext& ctx = op_context(info, device);
  GroupNormArgs a;
  a.out = out->ref();
  a.x = x->ref();
  a.weight = weight->ref();
  a.bias = bias->ref();
  a.groups = napi::arg_int(info, 4, "groups");
  a.eps = static_cast<float>(napi::arg_number(info, 5, "eps"));
  a.silu = napi::arg_bool(info, 6, "silu");
  SV_CHECK(a.x.ndim >= 3 && out->shape() == x->shape(), "ERR_SHAPE",
           "group_norm: expected x [..., H, W, C] and out of the same shape, got " + a.x.shape_string() + " and " +
               a.out.shape_string());
  a.channels = a.x.size(-1);
  a.pixels = a.x.size(-3) * a.x.size(-2);
  a.frames = a.x.outer(-3);
  SV_CHECK(a.groups > 0 && a.channels % a.groups == 0, "ERR_SHAPE",
           "group_norm: " + std::to_string(a.groups) + " groups do not divide " + std::to_string(a.channels) + " channels");
  require_dtype("group_norm", x->dtype(), {{"out", out}, {"weight", weight}, {"bias", bias}});
  require_numel("group_norm", a.channels, {{"weight", weight}, {"bias", bias}});
  if (device == kCpuDevice) {
    run_on_cpu({out, x, weight, bias}, [ctx, a] { cpu::group_norm(ctx, a); });
  } else {
    SV_CUDA(cuda::group_norm(ctx, a));
  }
  return info.Env().Undefined();
}

void register_norm_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("layerNorm", Napi::Function::New(env, op_layer_norm));
  ops.Set("rmsNorm", Napi::Function::New(env, op_rms_norm));
  ops.Set("groupNorm", Napi::Function::New(env, op_group_norm));
}

}  // namespace sv
