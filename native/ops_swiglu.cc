// N-API glue of the SwiGLU family (native/swiglu.h).
#include <napi.h>

#include "dispatch.h"
#include "napi_util.h"
#include "swiglu.h"

namespace sv {

// swiglu(out, x): x [..., 2F] → out [..., F].
SV_EXPORT(op_swiglu) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* x = NativeTensor::unwrap(info[1], "x");
  const int device = common_device({out, x});
  const ExecContext& ctx = op_context(info, device);
  SwigluArgs a;
  a.out = out->ref();
  a.x = x->ref();
  SV_CHECK(a.x.ndim >= 1 && a.x.size(-1) % 2 == 0, "ERR_SHAPE",
           "swiglu: x must be [..., 2F] with an even last dimension, got " + a.x.shape_string());
  a.half = a.x.size(-1) / 2;
  a.rows = a.x.outer(-1);
  std::vector<int64_t> expected = x->shape();
  expected.back() = a.half;
  SV_CHECK(out->shape() == expected, "ERR_SHAPE",
           "swiglu: out must be [..., " + std::to_string(a.half) + "] for x " + a.x.shape_string() + ", got " +
               a.out.shape_string());
  require_dtype("swiglu", x->dtype(), {{"out", out}});
  if (device == kCpuDevice) {
    run_on_cpu({out, x}, [ctx, a] { cpu::swiglu(ctx, a); });
  } else {
    SV_CUDA(cuda::swiglu(ctx, a));
  }
  return info.Env().Undefined();
}

void register_swiglu_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("swiglu", Napi::Function::New(env, op_swiglu));
}

}  // namespace sv
