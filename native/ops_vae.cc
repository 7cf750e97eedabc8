// N-API glue of the VAE fusions (native/vae.h).
#include <napi.h>

#include <string>

#include "dispatch.h"
#include "napi_util.h"
#include "vae.h"

namespace sv {

// upsampleResidual(out, h, x, upT, upS): out = SiLU(h + up(x)) + up(x), h/out [B, T, H, W, C]; out may be h.
SV_EXPORT(op_upsample_residual) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* h = NativeTensor::unwrap(info[1], "h");
  NativeTensor* x = NativeTensor::unwrap(info[2], "x");
  const int64_t up_t = napi::arg_int(info, 3, "upT");
  const int64_t up_s = napi::arg_int(info, 4, "upS");
  const int device = common_device({out, h, x});
  const ExecContext& ctx = op_context(info, device);
  UpsampleResidualArgs a;
  a.out = out->ref();
  a.h = h->ref();
  a.x = x->ref();
  SV_CHECK(up_t >= 1 && up_t <= 8 && up_s >= 1 && up_s <= 8, "ERR_ARGUMENT",
           "upsample_residual: upsampling factors must be in [1, 8]");
  a.up_t = static_cast<int32_t>(up_t);
  a.up_s = static_cast<int32_t>(up_s);
  SV_CHECK(a.h.ndim == 5 && a.x.ndim == 5 && out->shape() == h->shape(), "ERR_SHAPE",
           "upsample_residual: expected h and out [B, T, H, W, C] and x [B, T/" + std::to_string(up_t) + ", H/" +
               std::to_string(up_s) + ", W/" + std::to_string(up_s) + ", C], got h " + a.h.shape_string() + ", x " +
               a.x.shape_string() + ", out " + a.out.shape_string());
  a.batch = a.h.shape[0];
  a.frames = a.h.shape[1];
  a.height = a.h.shape[2];
  a.width = a.h.shape[3];
  a.channels = a.h.shape[4];
  SV_CHECK(a.x.shape[0] == a.batch && a.x.shape[1] * up_t == a.frames && a.x.shape[2] * up_s == a.height &&
               a.x.shape[3] * up_s == a.width && a.x.shape[4] == a.channels,
           "ERR_SHAPE",
           "upsample_residual: x " + a.x.shape_string() + " upsampled by (" + std::to_string(up_t) + ", " +
               std::to_string(up_s) + ", " + std::to_string(up_s) + ") must give h's shape " + a.h.shape_string());
  require_dtype("upsample_residual", h->dtype(), {{"out", out}, {"x", x}});
  // In place (out is h) is allowed: each element of h is read once, just before its output is written.
  SV_CHECK(out->storage() != x->storage(), "ERR_ARGUMENT", "upsample_residual: out must not share memory with x");
  SV_CHECK(out->storage() != h->storage() || a.out.data == a.h.data, "ERR_ARGUMENT",
           "upsample_residual: out must be h itself or not share memory with it");
  if (device == kCpuDevice) {
    run_on_cpu({out, h, x}, [ctx, a] { cpu::upsample_residual(ctx, a); });
  } else {
    SV_CUDA(cuda::upsample_residual(ctx, a));
  }
  return info.Env().Undefined();
}

void register_vae_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("upsampleResidual", Napi::Function::New(env, op_upsample_residual));
}

}  // namespace sv
