// N-API glue of the FP8 family (native/fp8.h).
#include <napi.h>

#include "dispatch.h"
#include "fp8.h"
#include "napi_util.h"

namespace sv {
namespace {

// codes u8 [rows, cols] and scales f32 [rows] describing a matrix of `rows` × `cols`.
void check_codes(const char* op, const NativeTensor* codes, const NativeTensor* scales, int64_t rows, int64_t cols) {
  TensorRef c = codes->ref(), s = scales->ref();
  SV_CHECK(codes->dtype() == DType::u8, "ERR_DTYPE",
           std::string(op) + ": codes must be u8 (e4m3 bit patterns), got " + dtype_name(codes->dtype()));
  SV_CHECK(scales->dtype() == DType::f32, "ERR_DTYPE",
           std::string(op) + ": scales must be f32, got " + dtype_name(scales->dtype()));
  SV_CHECK(c.ndim == 2 && c.shape[0] == rows && c.shape[1] == cols, "ERR_SHAPE",
           std::string(op) + ": codes must be [" + std::to_string(rows) + ", " + std::to_string(cols) + "], got " +
               c.shape_string());
  SV_CHECK(s.numel() == rows, "ERR_SHAPE",
           std::string(op) + ": scales must hold " + std::to_string(rows) + " values (one per row), got " + s.shape_string());
}

void require_float_dtype(const char* op, const char* name, const NativeTensor* t) {
  const DType d = t->dtype();
  SV_CHECK(d == DType::f32 || d == DType::bf16 || d == DType::f16, "ERR_DTYPE",
           std::string(op) + ": '" + name + "' must be f32, bf16 or f16, got " + dtype_name(d));
}

}  // namespace

// fp8Quantize(codes, scales, x): x [rows, cols] float -> codes u8 [rows, cols], scales f32 [rows].
SV_EXPORT(op_fp8_quantize) {
  NativeTensor* codes = NativeTensor::unwrap(info[0], "codes");
  NativeTensor* scales = NativeTensor::unwrap(info[1], "scales");
  NativeTensor* x = NativeTensor::unwrap(info[2], "x");
  const int device = common_device({codes, scales, x});
  const ExecContext& ctx = op_context(info, device);
  require_float_dtype("fp8_quantize", "x", x);
  Fp8QuantizeArgs a;
  a.codes = codes->ref();
  a.scales = scales->ref();
  a.x = x->ref();
  SV_CHECK(a.x.ndim == 2, "ERR_SHAPE", "fp8_quantize: x must be [rows, cols], got " + a.x.shape_string());
  a.rows = a.x.shape[0];
  a.cols = a.x.shape[1];
  check_codes("fp8_quantize", codes, scales, a.rows, a.cols);
  if (device == kCpuDevice) {
    run_on_cpu({codes, scales, x}, [ctx, a] { cpu::fp8_quantize(ctx, a); });
  } else {
    SV_CUDA(cuda::fp8_quantize(ctx, a));
  }
  return info.Env().Undefined();
}

// fp8Dequantize(out, codes, scales): out [rows, cols] float = decode(codes) · scales[row].
SV_EXPORT(op_fp8_dequantize) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* codes = NativeTensor::unwrap(info[1], "codes");
  NativeTensor* scales = NativeTensor::unwrap(info[2], "scales");
  const int device = common_device({out, codes, scales});
  const ExecContext& ctx = op_context(info, device);
  require_float_dtype("fp8_dequantize", "out", out);
  Fp8DequantizeArgs a;
  a.out = out->ref();
  a.codes = codes->ref();
  a.scales = scales->ref();
  SV_CHECK(a.out.ndim == 2, "ERR_SHAPE", "fp8_dequantize: out must be [rows, cols], got " + a.out.shape_string());
  a.rows = a.out.shape[0];
  a.cols = a.out.shape[1];
  check_codes("fp8_dequantize", codes, scales, a.rows, a.cols);
  if (device == kCpuDevice) {
    run_on_cpu({out, codes, scales}, [ctx, a] { cpu::fp8_dequantize(ctx, a); });
  } else {
    SV_CUDA(cuda::fp8_dequantize(ctx, a));
  }
  return info.Env().Undefined();
}

// linearFp8(out, x, codes, scales, activations, epilogue): out [rows, n] = epilogue(x [rows, k] ·
// dequant(codes [n, k], scales [n])ᵀ); activations 0 = as they are, 1 = quantized per row.
SV_EXPORT(op_linear_fp8) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* x = NativeTensor::unwrap(info[1], "x");
  NativeTensor* codes = NativeTensor::unwrap(info[2], "codes");
  NativeTensor* scales = NativeTensor::unwrap(info[3], "scales");
  int64_t activations = napi::arg_int(info, 4, "activations");
  int64_t epilogue = napi::arg_int(info, 5, "epilogue");
  SV_CHECK(activations == 0 || activations == 1, "ERR_ARGUMENT",
           "linear_fp8: activations must be 0 (none) or 1 (per row), got " + std::to_string(activations));
  SV_CHECK(epilogue == 0 || epilogue == 1, "ERR_ARGUMENT",
           "linear_fp8: epilogue must be 0 (none) or 1 (gelu_tanh), got " + std::to_string(epilogue));
  const int device = common_device({out, x, codes, scales});
  const ExecContext& ctx = op_context(info, device);
  require_float_dtype("linear_fp8", "x", x);
  SV_CHECK(out->dtype() == x->dtype(), "ERR_DTYPE", "linear_fp8: out and x must share a dtype");
  LinearFp8Args a;
  a.out = out->ref();
  a.x = x->ref();
  a.codes = codes->ref();
  a.scales = scales->ref();
  a.activations = static_cast<Fp8Activations>(activations);
  a.epilogue = static_cast<MatmulEpilogue>(epilogue);
  SV_CHECK(a.x.ndim == 2 && a.codes.ndim == 2, "ERR_SHAPE",
           "linear_fp8: expected x [rows, k] and codes [n, k], got " + a.x.shape_string() + " and " + a.codes.shape_string());
  a.rows = a.x.shape[0];
  a.k = a.x.shape[1];
  a.n = a.codes.shape[0];
  SV_CHECK(a.k > 0, "ERR_SHAPE", "linear_fp8: k must be positive");
  check_codes("linear_fp8", codes, scales, a.n, a.k);
  SV_CHECK(a.out.ndim == 2 && a.out.shape[0] == a.rows && a.out.shape[1] == a.n, "ERR_SHAPE",
           "linear_fp8: expected out [" + std::to_string(a.rows) + ", " + std::to_string(a.n) + "], got " +
               a.out.shape_string());
  if (device == kCpuDevice) {
    run_on_cpu({out, x, codes, scales}, [ctx, a] { cpu::linear_fp8(ctx, a); });
  } else {
    SV_CUDA(cuda::linear_fp8(ctx, a));
  }
  return info.Env().Undefined();
}

void register_fp8_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("fp8Quantize", Napi::Function::New(env, op_fp8_quantize));
  ops.Set("fp8Dequantize", Napi::Function::New(env, op_fp8_dequantize));
  ops.Set("linearFp8", Napi::Function::New(env, op_linear_fp8));
}

}  // namespace sv
