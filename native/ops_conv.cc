// N-API glue of the convolution family (native/conv.h).
#include <napi.h>

#include <string>
#include <vector>

#include "conv.h"
#include "dispatch.h"
#include "napi_util.h"

namespace sv {
namespace {

struct ConvCall {
  Conv3dArgs args;
  NativeTensor *out, *x, *weight, *bias, *residual;
  ExecContext ctx;
};

std::vector<int64_t> int_list(const Napi::CallbackInfo& info, size_t index, const char* name, size_t count) {
  std::vector<int64_t> values = napi::arg_int_array(info, index, name);
  SV_CHECK(values.size() == count, "ERR_ARGUMENT",
           std::string("conv3d: ") + name + " needs " + std::to_string(count) + " entries, got " +
               std::to_string(values.size()));
  return values;
}

// Output extent of one axis: (virtual + pads − kernel) / stride + 1, or −1 when the kernel does not fit.
int64_t out_extent(int64_t virtual_size, int64_t pad_before, int64_t pad_after, int64_t kernel, int64_t stride) {
  const int64_t span = virtual_size + pad_before + pad_after - kernel;
  return span < 0 ? -1 : span / stride + 1;
}

// conv3d(out, x, weight, bias?, residual?, stride[3], pads[6] = front, back, top, bottom, left, right,
//        upsample[2] = time, space): validates everything the kernels rely on.
ConvCall read_conv_call(const Napi::CallbackInfo& info) {
  ConvCall c;
  c.out = NativeTensor::unwrap(info[0], "out");
  c.x = NativeTensor::unwrap(info[1], "x");
  c.weight = NativeTensor::unwrap(info[2], "weight");
  c.bias = optional_tensor(info, 3, "bias");
  c.residual = optional_tensor(info, 4, "residual");
  const std::vector<int64_t> stride = int_list(info, 5, "stride", 3);
  const std::vector<int64_t> pads = int_list(info, 6, "pads", 6);
  const std::vector<int64_t> up = int_list(info, 7, "upsample", 2);
  c.ctx = op_context(info, common_device({c.out, c.x, c.weight, c.bias, c.residual}));
  Conv3dArgs& a = c.args;
  a.out = c.out->ref();
  a.x = c.x->ref();
  a.weight = c.weight->ref();
  a.bias = optional_ref(c.bias);
  a.residual = optional_ref(c.residual);
  SV_CHECK(a.x.ndim == 5 && a.weight.ndim == 5 && a.out.ndim == 5, "ERR_SHAPE",
           "conv3d: expected x [B, T, H, W, Cin], weight [Cout, kt, kh, kw, Cin] and out [B, To, Ho, Wo, Cout], got x " +
               a.x.shape_string() + ", weight " + a.weight.shape_string() + ", out " + a.out.shape_string());
  require_dtype("conv3d", c.x->dtype(), {{"out", c.out}, {"weight", c.weight}, {"bias", c.bias}, {"residual", c.residual}});
  for (int i = 0; i < 3; i++)
    SV_CHECK(stride[i] >= 1 && stride[i] <= 64, "ERR_ARGUMENT", "conv3d: strides must be in [1, 64]");
  for (int i = 0; i < 6; i++) SV_CHECK(pads[i] >= 0 && pads[i] <= 64, "ERR_ARGUMENT", "conv3d: pads must be in [0, 64]");
  for (int i = 0; i < 2; i++)
    SV_CHECK(up[i] == 1 || up[i] == 2 || up[i] == 4 || up[i] == 8, "ERR_ARGUMENT",
             "conv3d: upsampling factors must be 1, 2, 4 or 8, got " + std::to_string(up[i]));
  a.batch = a.x.shape[0];
  a.in_t = a.x.shape[1];
  a.in_h = a.x.shape[2];
  a.in_w = a.x.shape[3];
  a.in_ch = a.x.shape[4];
  a.out_ch = a.weight.shape[0];
  SV_CHECK(a.weight.shape[4] == a.in_ch && a.in_ch > 0, "ERR_SHAPE",
           "conv3d: weight " + a.weight.shape_string() + " must be [Cout, kt, kh, kw, " + std::to_string(a.in_ch) + "]");
  SV_CHECK(a.weight.shape[1] >= 1 && a.weight.shape[1] <= 16 && a.weight.shape[2] >= 1 && a.weight.shape[2] <= 16 &&
               a.weight.shape[3] >= 1 && a.weight.shape[3] <= 16,
           "ERR_SHAPE", "conv3d: kernel sizes must be in [1, 16], got weight " + a.weight.shape_string());
  a.kt = static_cast<int32_t>(a.weight.shape[1]);
  a.kh = static_cast<int32_t>(a.weight.shape[2]);
  a.kw = static_cast<int32_t>(a.weight.shape[3]);
  a.stride_t = static_cast<int32_t>(stride[0]);
  a.stride_h = static_cast<int32_t>(stride[1]);
  a.stride_w = static_cast<int32_t>(stride[2]);
  a.pad_front = static_cast<int32_t>(pads[0]);
  a.pad_top = static_cast<int32_t>(pads[2]);
  a.pad_left = static_cast<int32_t>(pads[4]);
  a.up_t = static_cast<int32_t>(up[0]);
  a.up_s = static_cast<int32_t>(up[1]);
  // The kernels keep coordinates, pixel indices of one batch item and K in 32-bit integers.
  constexpr int64_t kLimit = 1LL << 30;
  SV_CHECK(a.in_t * a.up_t < kLimit && a.in_h * a.up_s < kLimit && a.in_w * a.up_s < kLimit && a.in_t * a.in_h * a.in_w < kLimit &&
               a.gemm_k() < kLimit,
           "ERR_SHAPE", "conv3d: input " + a.x.shape_string() + " or kernel " + a.weight.shape_string() + " is too large");
  const int64_t expected_t = out_extent(a.in_t * a.up_t, pads[0], pads[1], a.kt, a.stride_t);
  const int64_t expected_h = out_extent(a.in_h * a.up_s, pads[2], pads[3], a.kh, a.stride_h);
  const int64_t expected_w = out_extent(a.in_w * a.up_s, pads[4], pads[5], a.kw, a.stride_w);
  SV_CHECK(expected_t >= 1 && expected_h >= 1 && expected_w >= 1, "ERR_SHAPE",
           "conv3d: kernel " + a.weight.shape_string() + " does not fit the padded input " + a.x.shape_string());
  const std::string expected_out = "[" + std::to_string(a.batch) + ", " + std::to_string(expected_t) + ", " +
                                   std::to_string(expected_h) + ", " + std::to_string(expected_w) + ", " +
                                   std::to_string(a.out_ch) + "]";
  SV_CHECK(a.out.shape[0] == a.batch && a.out.shape[1] == expected_t && a.out.shape[2] == expected_h &&
               a.out.shape[3] == expected_w && a.out.shape[4] == a.out_ch,
           "ERR_SHAPE", "conv3d: out must be " + expected_out + ", got " + a.out.shape_string());
  a.out_t = expected_t;
  a.out_h = expected_h;
  a.out_w = expected_w;
  require_numel("conv3d", a.out_ch, {{"bias", c.bias}});
  SV_CHECK(c.residual == nullptr || c.residual->shape() == c.out->shape(), "ERR_SHAPE",
           "conv3d: residual " + a.residual.shape_string() + " must have out's shape " + a.out.shape_string());
  // The kernels read x and residual while writing out: they must not share memory.
  SV_CHECK(c.out->storage() != c.x->storage() && (c.residual == nullptr || c.out->storage() != c.residual->storage()),
           "ERR_ARGUMENT", "conv3d: out must not share memory with x or residual");
  return c;
}

}  // namespace

SV_EXPORT(op_conv3d) {
  ConvCall c = read_conv_call(info);
  if (c.ctx.device == kCpuDevice) {
    run_on_cpu({c.out, c.x, c.weight, c.bias, c.residual}, [ctx = c.ctx, a = c.args] { cpu::conv3d(ctx, a); });
  } else {
    SV_CUDA(cuda::conv3d(c.ctx, c.args));
  }
  return info.Env().Undefined();
}

// conv3dKernelName(same arguments as conv3d): which implementation conv3d would run ("cpu" on the host).
SV_EXPORT(op_conv3d_kernel_name) {
  ConvCall c = read_conv_call(info);
  if (c.ctx.device == kCpuDevice) return Napi::String::New(info.Env(), "cpu");
#ifdef SV_WITH_CUDA
  return Napi::String::New(info.Env(), cuda::conv3d_kernel_name(c.ctx, c.args));
#else
  return Napi::String::New(info.Env(), "none");
#endif
}

void register_conv_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("conv3d", Napi::Function::New(env, op_conv3d));
  ops.Set("conv3dKernelName", Napi::Function::New(env, op_conv3d_kernel_name));
}

}  // namespace sv
