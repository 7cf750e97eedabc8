// CPU reference: broadcasting binary ops and unary activations, f32.
#include <cmath>

#include "../kernels.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

// d/dx of 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³).
static inline float gelu_tanh_derivative(float x) {
  const float t = std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * x * x);
}

// d/dx of x·σ(x) = σ(x)·(1 + x·(1 − σ(x))).
static inline float silu_derivative(float x) {
  const float s = 1.0f / (1.0f + std::exp(-x));
  return s * (1.0f + x * (1.0f - s));
}

void binary(const ExecContext& ctx, const BinaryArgs& args) {
  require_f32(args.out, "binary", "out");
  require_f32(args.a, "binary", "a");
  require_f32(args.b, "binary", "b");
  const float* a = args.a.as<float>();
  const float* b = args.b.as<float>();
  float* out = args.out.as<float>();
  const int nd = args.ndim;
  const int64_t inner = nd ? args.shape[nd - 1] : 1;
  const int64_t as = nd ? args.a_strides[nd - 1] : 0, bs = nd ? args.b_strides[nd - 1] : 0;
  int64_t rows = 1;
  for (int i = 0; i < nd - 1; i++) rows *= args.shape[i];
  const BinaryOp op = args.op;
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, inner)), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; row++) {
      int64_t rest = row, a_off = 0, b_off = 0;
      for (int i = nd - 2; i >= 0; i--) {
        int64_t coord = rest % args.shape[i];
        rest /= args.shape[i];
        a_off += coord * args.a_strides[i];
        b_off += coord * args.b_strides[i];
      }
      const float* pa = a + a_off;
      const float* pb = b + b_off;
      float* po = out + row * inner;
      switch (op) {
        case BinaryOp::add: for (int64_t j = 0; j < inner; j++) po[j] = pa[j * as] + pb[j * bs]; break;
        case BinaryOp::sub: for (int64_t j = 0; j < inner; j++) po[j] = pa[j * as] - pb[j * bs]; break;
        case BinaryOp::mul: for (int64_t j = 0; j < inner; j++) po[j] = pa[j * as] * pb[j * bs]; break;
        case BinaryOp::div: for (int64_t j = 0; j < inner; j++) po[j] = pa[j * as] / pb[j * bs]; break;
        case BinaryOp::maximum: for (int64_t j = 0; j < inner; j++) po[j] = std::fmax(pa[j * as], pb[j * bs]); break;
        case BinaryOp::minimum: for (int64_t j = 0; j < inner; j++) po[j] = std::fmin(pa[j * as], pb[j * bs]); break;
        case BinaryOp::gelu_tanh_backward: for (int64_t j = 0; j < inner; j++) po[j] = pa[j * as] * gelu_tanh_derivative(pb[j * bs]); break;
        case BinaryOp::silu_backward: for (int64_t j = 0; j < inner; j++) po[j] = pa[j * as] * silu_derivative(pb[j * bs]); break;
      }
    }
  });
}

static inline float apply_unary(UnaryOp op, float x, float alpha, float beta) {
  switch (op) {
    case UnaryOp::affine: return alpha * x + beta;
    case UnaryOp::silu: return x / (1.0f + std::exp(-x));
    case UnaryOp::gelu_tanh: {
      const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
      return 0.5f * x * (1.0f + std::tanh(inner));
    }
    case UnaryOp::gelu_erf: return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
    case UnaryOp::exp: return std::exp(x);
    case UnaryOp::sqrt: return std::sqrt(x);
    case UnaryOp::rsqrt: return 1.0f / std::sqrt(x);
    case UnaryOp::square: return x * x;
    case UnaryOp::tanh: return std::tanh(x);
    case UnaryOp::sigmoid: return 1.0f / (1.0f + std::exp(-x));
    case UnaryOp::abs: return std::fabs(x);
    case UnaryOp::neg: return -x;
  }
  return x;
}

void unary(const ExecContext& ctx, const UnaryArgs& args) {
  require_f32(args.out, "unary", "out");
  require_f32(args.x, "unary", "x");
  const float* x = args.x.as<float>();
  float* out = args.out.as<float>();
  const UnaryOp op = args.op;
  const float alpha = args.alpha, beta = args.beta;
  parallel_for(args.x.numel(), 16384, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) out[i] = apply_unary(op, x[i], alpha, beta);
  });
}

}  // namespace sv::cpu
