// N-API glue of the gated residual (native/residual.h).
#include <napi.h>

#include "dispatch.h"
#include "napi_util.h"
#include "residual.h"

namespace sv {

// gatedResidual(out, x, y, gate?): out = x + gate ⊙ y, x/y/out [..., dim], gate [groups, dim].
SV_EXPORT(op_gated_residual) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* x = NativeTensor::unwrap(info[1], "x");
  NativeTensor* y = NativeTensor::unwrap(info[2], "y");
  NativeTensor* gate = optional_tensor(info, 3, "gate");
  const int device = common_device({out, x, y, gate});
  const ExecContext& ctx = op_context(info, device);
  GatedResidualArgs a;
  a.out = out->ref();
  a.x = x->ref();
  a.y = y->ref();
  a.gate = optional_ref(gate);
  SV_CHECK(a.x.ndim >= 1 && out->shape() == x->shape() && y->shape() == x->shape(), "ERR_SHAPE",
           "gated_residual: x " + a.x.shape_string() + ", y " + a.y.shape_string() + " and out " + a.out.shape_string() +
               " must be equal");
  a.dim = a.x.size(-1);
  a.rows = a.x.outer(-1);
  require_dtype("gated_residual", x->dtype(), {{"out", out}, {"y", y}, {"gate", gate}});
  if (gate) a.rows_per_group = rows_per_gate_group("gated_residual", a.gate, a.rows, a.dim);
  if (device == kCpuDevice) {
    run_on_cpu({out, x, y, gate}, [ctx, a] { cpu::gated_residual(ctx, a); });
  } else {
    SV_CUDA(cuda::gated_residual(ctx, a));
  }
  return info.Env().Undefined();
}

void register_residual_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("gatedResidual", Napi::Function::New(env, op_gated_residual));
}

}  // namespace sv
