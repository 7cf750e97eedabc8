// N-API glue of the normalisation family (native/norm.h).
#include <napi.h>

#include <initializer_list>
#include <string>

#include "dispatch.h"
#include "napi_util.h"
#include "norm.h"

namespace sv {
namespace {
// Rows per modulation group: each of the modulation tensors (scale, and the forward's shift;
// `names` as the message writes them) [groups, dim] with the same groups, dividing rows.
int64_t rows_per_group(const std::string& op, const std::string& names, std::initializer_list<TensorRef> modulation,
                       int64_t rows, int64_t dim) {
  const TensorRef& first = *modulation.begin();
  bool ok = first.ndim == 2 && first.shape[0] > 0 && rows % first.shape[0] == 0;
  std::string shapes;
  for (const TensorRef& m : modulation) {
    ok = ok && m.ndim == 2 && m.shape[0] == first.shape[0] && m.shape[1] == dim;
    shapes += (shapes.empty() ? "" : " and ") + m.shape_string();
  }
  SV_CHECK(ok, "ERR_SHAPE", op + ": " + names + " must be [groups, " + std::to_string(dim) + "] with groups dividing " +
                                std::to_string(rows) + " rows, got " + shapes);
  return rows / first.shape[0];
}
}  // namespace

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
  if (scale) a.rows_per_group = rows_per_group("layer_norm", "scale/shift", {a.scale, a.shift}, a.rows, a.dim);
  if (device == kCpuDevice) {
    run_on_cpu({out, x, weight, bias, scale, shift}, [ctx, a] { cpu::layer_norm(ctx, a); });
  } else {
    SV_CUDA(cuda::layer_norm(ctx, a));
  }
  return info.Env().Undefined();
}

// layerNormBackward(dx, dy, x, weight?, scale?, eps)
//   dx, dy, x [..., dim]; weight [dim]; scale [groups, dim], rows split evenly into groups (the
//   forward's bias and shift do not enter dx).
SV_EXPORT(op_layer_norm_backward) {
  NativeTensor* dx = NativeTensor::unwrap(info[0], "dx");
  NativeTensor* dy = NativeTensor::unwrap(info[1], "dy");
  NativeTensor* x = NativeTensor::unwrap(info[2], "x");
  NativeTensor* weight = optional_tensor(info, 3, "weight");
  NativeTensor* scale = optional_tensor(info, 4, "scale");
  const int device = common_device({dx, dy, x, weight, scale});
  const ExecContext& ctx = op_context(info, device);
  LayerNormBackwardArgs a;
  a.dx = dx->ref();
  a.dy = dy->ref();
  a.x = x->ref();
  a.weight = optional_ref(weight);
  a.scale = optional_ref(scale);
  a.eps = static_cast<float>(napi::arg_number(info, 5, "eps"));
  SV_CHECK(a.x.ndim >= 1 && dy->shape() == x->shape() && dx->shape() == x->shape(), "ERR_SHAPE",
           "layer_norm_backward: dy " + a.dy.shape_string() + " and dx " + a.dx.shape_string() + " must equal x " +
               a.x.shape_string());
  a.dim = a.x.size(-1);
  a.rows = a.x.outer(-1);
  require_dtype("layer_norm_backward", x->dtype(), {{"dx", dx}, {"dy", dy}, {"weight", weight}, {"scale", scale}});
  require_numel("layer_norm_backward", a.dim, {{"weight", weight}});
  if (scale) a.rows_per_group = rows_per_group("layer_norm_backward", "scale", {a.scale}, a.rows, a.dim);
  if (device == kCpuDevice) {
    run_on_cpu({dx, dy, x, weight, scale}, [ctx, a] { cpu::layer_norm_backward(ctx, a); });
  } else {
    SV_CUDA(cuda::layer_norm_backward(ctx, a));
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
  ops.Set("layerNormBackward", Napi::Function::New(env, op_layer_norm_backward));
  ops.Set("rmsNorm", Napi::Function::New(env, op_rms_norm));
  ops.Set("groupNorm", Napi::Function::New(env, op_group_norm));
}

}  // namespace sv
