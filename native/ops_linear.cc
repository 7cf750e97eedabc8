// N-API glue of the GEMM variants (native/linear.h).
#include <napi.h>

#include "dispatch.h"
#include "linear.h"
#include "napi_util.h"

namespace sv {

// linearResidual(out, x, weight, residual, gate?): out = residual + gate[row / (rows / G)] ⊙ (x · weightᵀ)
//   x [rows, k], weight [n, k], residual and out [rows, n], gate [G, n] with G dividing rows.
SV_EXPORT(op_linear_residual) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* x = NativeTensor::unwrap(info[1], "x");
  NativeTensor* weight = NativeTensor::unwrap(info[2], "weight");
  NativeTensor* residual = NativeTensor::unwrap(info[3], "residual");
  NativeTensor* gate = optional_tensor(info, 4, "gate");
  const int device = common_device({out, x, weight, residual, gate});
  const ExecContext& ctx = op_context(info, device);
  // The output must be fresh memory: an autotuned CUDA run computes it several times, and an
  // output aliasing the residual (or an input) would accumulate on each.
  for (const NativeTensor* input : {x, weight, residual, gate}) {
    SV_CHECK(input == nullptr || input->storage() != out->storage(), "ERR_ARGUMENT",
             "linear_residual: out must not share memory with an input");
  }
  require_dtype("linear_residual", x->dtype(), {{"out", out}, {"weight", weight}, {"residual", residual}, {"gate", gate}});
  SV_CHECK(x->dtype() == DType::f32 || x->dtype() == DType::bf16 || x->dtype() == DType::f16, "ERR_DTYPE",
           std::string("linear_residual: expected f32, bf16 or f16, got ") + dtype_name(x->dtype()));
  LinearResidualArgs a;
  a.out = out->ref();
  a.x = x->ref();
  a.weight = weight->ref();
  a.residual = residual->ref();
  if (gate) a.gate = gate->ref();
  SV_CHECK(a.x.ndim == 2 && a.weight.ndim == 2 && a.x.shape[1] == a.weight.shape[1], "ERR_SHAPE",
           "linear_residual: expected x [rows, k] and weight [n, k], got " + a.x.shape_string() + " and " +
               a.weight.shape_string());
  a.rows = a.x.shape[0];
  a.k = a.x.shape[1];
  a.n = a.weight.shape[0];
  for (const auto& [name, t] : {std::pair<const char*, const TensorRef*>{"residual", &a.residual}, {"out", &a.out}}) {
    SV_CHECK(t->ndim == 2 && t->shape[0] == a.rows && t->shape[1] == a.n, "ERR_SHAPE",
             std::string("linear_residual: ") + name + " must be [" + std::to_string(a.rows) + ", " + std::to_string(a.n) +
                 "], got " + t->shape_string());
  }
  if (gate) a.rows_per_group = rows_per_gate_group("linear_residual", a.gate, a.rows, a.n);
  if (device == kCpuDevice) {
    run_on_cpu({out, x, weight, residual, gate}, [ctx, a] { cpu::linear_residual(ctx, a); });
  } else {
    SV_CUDA(cuda::linear_residual(ctx, a));
  }
  return info.Env().Undefined();
}

void register_linear_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("linearResidual", Napi::Function::New(env, op_linear_residual));
}

}  // namespace sv
