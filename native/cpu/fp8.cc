// CPU reference for native/fp8.h: per-row e4m3 quantization with the host encoder, and the FP8
// Linear computed as the f32 GEMM over the dequantized operands (exact products of the e4m3
// values and their scales), so the accuracy of FP8 weights (and activations) is measured here
// without a GPU.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../fp8.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {
namespace {

// The 256 code values (NaN for the two NaN codes).
const float* decode_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(256);
    for (int code = 0; code < 256; code++) t[code] = fp8_e4m3_decode(static_cast<uint8_t>(code));
    return t;
  }();
  return table.data();
}

// One row: scale = amax / 448, codes = e4m3(x / scale). The division (not a multiplication by
// 448 / amax) is what the CUDA kernel computes too, so both backends produce the same codes.
void quantize_row(const float* x, int64_t cols, uint8_t* codes, float* scale) {
  float amax = 0.0f;
  for (int64_t j = 0; j < cols; j++) amax = std::max(amax, std::fabs(x[j]));
  const float s = amax / kFp8E4M3Max;
  *scale = s;
  if (s == 0.0f) {  // an all-zero row: zero codes (NaN or infinity in x propagates as NaN codes)
    std::fill(codes, codes + cols, uint8_t{0});
    return;
  }
  for (int64_t j = 0; j < cols; j++) codes[j] = fp8_e4m3_encode(x[j] / s);
}

// dst[r, :] = decode(codes[r, :]) · scales[r] in f32.
void dequantize_rows(const uint8_t* codes, const float* scales, int64_t rows, int64_t cols, float* dst) {
  const float* table = decode_table();
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, cols)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const uint8_t* c = codes + r * cols;
      float* d = dst + r * cols;
      for (int64_t j = 0; j < cols; j++) d[j] = table[c[j]] * scales[r];
    }
  });
}

TensorRef host_matrix(float* data, int64_t rows, int64_t cols) {
  TensorRef t;
  t.data = data;
  t.dtype = DType::f32;
  t.ndim = 2;
  t.device = -1;  // host
  t.shape[0] = rows;
  t.shape[1] = cols;
  return t;
}

}  // namespace

void fp8_quantize(const ExecContext& ctx, const Fp8QuantizeArgs& a) {
  require_f32(a.x, "fp8_quantize", "x");
  const float* x = a.x.as<float>();
  uint8_t* codes = a.codes.as<uint8_t>();
  float* scales = a.scales.as<float>();
  parallel_for(a.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, a.cols)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) quantize_row(x + r * a.cols, a.cols, codes + r * a.cols, scales + r);
  });
}

void fp8_dequantize(const ExecContext& ctx, const Fp8DequantizeArgs& a) {
  require_f32(a.out, "fp8_dequantize", "out");
  dequantize_rows(a.codes.as<uint8_t>(), a.scales.as<float>(), a.rows, a.cols, a.out.as<float>());
}

void linear_fp8(const ExecContext& ctx, const LinearFp8Args& a) {
  require_f32(a.out, "linear_fp8", "out");
  require_f32(a.x, "linear_fp8", "x");
  std::vector<float> weight(static_cast<size_t>(a.n * a.k));
  dequantize_rows(a.codes.as<uint8_t>(), a.scales.as<float>(), a.n, a.k, weight.data());
  MatmulArgs m;
  m.out = a.out;
  m.a = a.x;
  m.b = host_matrix(weight.data(), a.n, a.k);
  m.batch = 1;
  m.m = a.rows;
  m.n = a.n;
  m.k = a.k;
  m.trans_b = true;
  m.epilogue = a.epilogue;
  std::vector<float> x_rounded;
  if (a.activations == Fp8Activations::per_row) {
    // What the FP8 GEMM consumes: each row of x as e4m3 codes times the row's scale.
    std::vector<uint8_t> codes(static_cast<size_t>(a.rows * a.k));
    std::vector<float> scales(static_cast<size_t>(a.rows));
    const float* x = a.x.as<float>();
    parallel_for(a.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, a.k)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) quantize_row(x + r * a.k, a.k, codes.data() + r * a.k, scales.data() + r);
    });
    x_rounded.resize(codes.size());
    dequantize_rows(codes.data(), scales.data(), a.rows, a.k, x_rounded.data());
    m.a = host_matrix(x_rounded.data(), a.rows, a.k);
  }
  matmul(ctx, m);
}

}  // namespace sv::cpu
