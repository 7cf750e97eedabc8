// FP8 weights: OCP FP8 E4M3 codes (1 sign bit, 4 exponent bits with bias 7, 3 mantissa bits;
// largest finite ±448, no infinities, S.1111.111 is NaN) held in u8 tensors, with one f32 scale
// per row (per output channel of a Linear weight): value = decode(code) · scale, scale = amax/448.
// Encoding rounds to nearest even and saturates to ±448.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels.h"
#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

// codes[r, c] = e4m3(x[r, c] / scales[r]) with scales[r] = max_c |x[r, c]| / 448 (an all-zero row
// gets scale 0 and zero codes). x [rows, cols] float; codes u8 [rows, cols]; scales f32 [rows].
struct Fp8QuantizeArgs {
  TensorRef codes, scales, x;
  int64_t rows = 0, cols = 0;
};

// out[r, c] = decode(codes[r, c]) · scales[r], rounded to out's dtype.
struct Fp8DequantizeArgs {
  TensorRef out, codes, scales;
  int64_t rows = 0, cols = 0;
};

// How a Linear with FP8 weights treats its input.
enum class Fp8Activations : int32_t {
  none = 0,     // x as it is: the weight is dequantized (the accuracy of FP8 weights alone)
  per_row = 1,  // x quantized to e4m3 with one scale per row, as the FP8 tensor-core GEMM consumes it
};

// out [rows, n] = epilogue(x · dequant(codes, scales)ᵀ) with x [rows, k], codes u8 [n, k], scales f32 [n].
struct LinearFp8Args {
  TensorRef out, x, codes, scales;
  int64_t rows = 0, n = 0, k = 0;
  Fp8Activations activations = Fp8Activations::none;
  MatmulEpilogue epilogue = MatmulEpilogue::none;
};

constexpr float kFp8E4M3Max = 448.0f;

// e4m3 code of v (round to nearest even, saturating to ±448; NaN stays NaN). Host side; the CUDA
// kernels use the hardware conversion, which rounds the same way.
inline uint8_t fp8_e4m3_encode(float v) {
  if (std::isnan(v)) return 0x7f;
  const uint8_t sign = std::signbit(v) ? 0x80 : 0x00;
  const double a = std::fabs(static_cast<double>(v));
  if (a < 0.015625) {  // below the smallest normal 2^-6: subnormal steps of 2^-9 (8 steps reach 2^-6 = code 8)
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(std::nearbyint(a * 512.0)));
  }
  int exponent = 0;
  const double fraction = std::frexp(a, &exponent);  // a = fraction · 2^exponent, fraction in [0.5, 1)
  int e = exponent - 1;                                 // a = (1 + f) · 2^e
  int mantissa = static_cast<int>(std::nearbyint((fraction * 2.0 - 1.0) * 8.0));
  if (mantissa == 8) {
    mantissa = 0;
    e += 1;
  }
  const int field = e + 7;
  if (field > 15 || (field == 15 && mantissa == 7)) return static_cast<uint8_t>(sign | 0x7e);  // saturate: 448
  return static_cast<uint8_t>(sign | (field << 3) | mantissa);
}

inline float fp8_e4m3_decode(uint8_t code) {
  const int field = (code >> 3) & 0xf, mantissa = code & 0x7;
  float magnitude;
  if (field == 15 && mantissa == 7) {
    magnitude = NAN;
  } else if (field == 0) {
    magnitude = std::ldexp(static_cast<float>(mantissa), -9);
  } else {
    magnitude = std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, field - 7);
  }
  return (code & 0x80) ? -magnitude : magnitude;
}

namespace cpu {
void fp8_quantize(const ExecContext& ctx, const Fp8QuantizeArgs& args);
void fp8_dequantize(const ExecContext& ctx, const Fp8DequantizeArgs& args);
void linear_fp8(const ExecContext& ctx, const LinearFp8Args& args);
}  // namespace cpu

namespace cuda {
void fp8_quantize(const ExecContext& ctx, const Fp8QuantizeArgs& args);
void fp8_dequantize(const ExecContext& ctx, const Fp8DequantizeArgs& args);
void linear_fp8(const ExecContext& ctx, const LinearFp8Args& args);
// The e4m3 × e4m3 GEMM through cuBLASLt (gemm_fp8.cu): out [rows, n] = epilogue(x_scales[r] ·
// w_scales[c] · Σ x_codes[r, :] · w_codes[c, :]). False when cuBLASLt cannot serve it here.
bool gemm_fp8_cublaslt(const ExecContext& ctx, const TensorRef& out, const TensorRef& x_codes, const TensorRef& x_scales,
                       const TensorRef& w_codes, const TensorRef& w_scales, int64_t rows, int64_t n, int64_t k,
                       MatmulEpilogue epilogue);
}  // namespace cuda

}  // namespace sv
