// CUDA twins of native/cpu/elementwise.cc: broadcasting binary ops and unary activations.
// f32 / bf16 / f16 storage, f32 math.
#include "../native/kernels.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

struct BroadcastIndex {
  int32_t ndim;
  int64_t shape[kMaxDims];
  int64_t a_strides[kMaxDims];
  int64_t b_strides[kMaxDims];
};

__device__ __forceinline__ float apply_binary(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::maximum: return fmaxf(a, b);
    case BinaryOp::minimum: return fminf(a, b);
    case BinaryOp::gelu_tanh_backward: {
      const float t = tanhf(0.7978845608028654f * (b + 0.044715f * b * b * b));
      return a * (0.5f * (1.0f + t) + 0.5f * b * (1.0f - t * t) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * b * b));
    }
    case BinaryOp::silu_backward: {
      const float s = 1.0f / (1.0f + expf(-b));
      return a * s * (1.0f + b * (1.0f - s));
    }
  }
  return 0.0f;
}

template <typename T>
__global__ void binary_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ out, BinaryOp op,
                              BroadcastIndex index, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t rest = i, ia = 0, ib = 0;
    for (int k = index.ndim - 1; k >= 0; k--) {
      int64_t coord = rest % index.shape[k];
      rest /= index.shape[k];
      ia += coord * index.a_strides[k];
      ib += coord * index.b_strides[k];
    }
    out[i] = from_f32<T>(apply_binary(op, to_f32(a[ia]), to_f32(b[ib])));
  }
}

__device__ __forceinline__ float apply_unary(UnaryOp op, float x, float alpha, float beta) {
  switch (op) {
    case UnaryOp::affine: return alpha * x + beta;
    case UnaryOp::silu: return x / (1.0f + expf(-x));
    case UnaryOp::gelu_tanh: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case UnaryOp::gelu_erf: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
    case UnaryOp::exp: return expf(x);
    case UnaryOp::sqrt: return sqrtf(x);
    case UnaryOp::rsqrt: return rsqrtf(x);
    case UnaryOp::square: return x * x;
    case UnaryOp::tanh: return tanhf(x);
    case UnaryOp::sigmoid: return 1.0f / (1.0f + expf(-x));
    case UnaryOp::abs: return fabsf(x);
    case UnaryOp::neg: return -x;
  }
  return x;
}

template <typename T>
__global__ void unary_kernel(const T* __restrict__ x, T* __restrict__ out, UnaryOp op, float alpha, float beta, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = from_f32<T>(apply_unary(op, to_f32(x[i]), alpha, beta));
}

}  // namespace

void binary(const ExecContext& ctx, const BinaryArgs& args) {
  use_device(ctx.device);
  int64_t n = args.out.numel();
  if (n == 0) return;
  BroadcastIndex index;
  index.ndim = args.ndim;
  for (int k = 0; k < kMaxDims; k++) {
    index.shape[k] = k < args.ndim ? args.shape[k] : 1;
    index.a_strides[k] = k < args.ndim ? args.a_strides[k] : 0;
    index.b_strides[k] = k < args.ndim ? args.b_strides[k] : 0;
  }
  dispatch_float(args.out.dtype, "binary", [&](auto t) {
    using T = decltype(t);
    launch(SV_HERE, binary_kernel<T>, grid_for(n, 256), 256, 0, work_stream(ctx), args.a.as<const T>(),
           args.b.as<const T>(), args.out.as<T>(), args.op, index, n);
  });
}

void unary(const ExecContext& ctx, const UnaryArgs& args) {
  use_device(ctx.device);
  int64_t n = args.out.numel();
  if (n == 0) return;
  dispatch_float(args.out.dtype, "unary", [&](auto t) {
    using T = decltype(t);
    launch(SV_HERE, unary_kernel<T>, grid_for(n, 256), 256, 0, work_stream(ctx), args.x.as<const T>(),
           args.out.as<T>(), args.op, args.alpha, args.beta, n);
  });
}

}  // namespace sv::cuda
