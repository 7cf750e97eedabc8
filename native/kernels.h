// Argument blocks of the foundation ops, shared by their CPU kernels (native/cpu/) and CUDA
// kernels (cuda/). The glue validates an Args block completely before handing it to a kernel, so
// kernels may trust it. Model-specific kernel families declare theirs in their own headers.
#pragma once
#include <cstdint>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

// Strided copy with dtype conversion: dst[dst_offset + i·dst_strides] = src[src_offset + i·src_strides]
// over the index space `shape`. Covers cast, permute, slice, concat (write into a part of dst),
// broadcast (stride 0) and gather of a sub-block. Strides and offsets count elements.
struct CopyArgs {
  TensorRef dst, src;
  int32_t ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t src_strides[kMaxDims] = {};
  int64_t dst_strides[kMaxDims] = {};
  int64_t src_offset = 0, dst_offset = 0;
};

// gelu_tanh_backward and silu_backward take (a = dy, b = x) and give dy · f'(x): the activations'
// backward passes (training, issue 19), computed in f32 from the forward's input.
enum class BinaryOp : int32_t { add = 0, sub = 1, mul = 2, div = 3, maximum = 4, minimum = 5, gelu_tanh_backward = 6, silu_backward = 7 };
// The op names in code order (also for UnaryOp and ReduceOp below): the addon exports them as
// opCodes(), and lib/ops.ts's codes are checked against them (test/cpu/addon-types.test.ts).
inline constexpr const char* kBinaryOpNames[] = {"add", "sub", "mul", "div", "maximum", "minimum", "gelu_tanh_backward", "silu_backward"};

// out[i] = a[i·a_strides] op b[i·b_strides] over `shape` (= out's shape, contiguous);
// broadcast dimensions have stride 0.
struct BinaryArgs {
  TensorRef out, a, b;
  BinaryOp op = BinaryOp::add;
  int32_t ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t a_strides[kMaxDims] = {};
  int64_t b_strides[kMaxDims] = {};
};

enum class UnaryOp : int32_t {
  affine = 0,     // alpha·x + beta
  silu = 1,       // x·sigmoid(x)
  gelu_tanh = 2,  // 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))
  gelu_erf = 3,   // 0.5x(1 + erf(x/√2))
  exp = 4,
  sqrt = 5,
  rsqrt = 6,
  square = 7,
  tanh = 8,
  sigmoid = 9,
  abs = 10,
  neg = 11,
};
inline constexpr const char* kUnaryOpNames[] = {"affine", "silu", "gelu_tanh", "gelu_erf", "exp", "sqrt",
                                                "rsqrt", "square", "tanh", "sigmoid", "abs", "neg"};

// out = op(x), elementwise, same shape; out may alias x.
struct UnaryArgs {
  TensorRef out, x;
  UnaryOp op = UnaryOp::affine;
  float alpha = 1.0f, beta = 0.0f;
};

// out[b] = alpha · a[b] · op(b[b]) (+ bias) for each of `batch` matrices, where a is [m, k],
// op(b) is b [k, n] or, with trans_b, b stored [n, k] (the nn.Linear weight layout).
// A batch stride of 0 broadcasts that operand. bias (optional, data == nullptr when absent) is [n].
// The epilogue, if any, is applied to alpha·a·op(b) + bias in f32 before the one rounding to out.
enum class MatmulEpilogue : int32_t { none = 0, gelu_tanh = 1 };

struct MatmulArgs {
  TensorRef out, a, b, bias;
  int64_t batch = 1, m = 0, n = 0, k = 0;
  int64_t a_batch_stride = 0, b_batch_stride = 0;  // elements
  bool trans_b = false;
  float alpha = 1.0f;
  MatmulEpilogue epilogue = MatmulEpilogue::none;
};

// Softmax over the last dimension: x viewed as [rows, cols].
struct SoftmaxArgs {
  TensorRef out, x;
  int64_t rows = 0, cols = 0;
};

enum class ReduceOp : int32_t { sum = 0, mean = 1, max = 2 };
inline constexpr const char* kReduceOpNames[] = {"sum", "mean", "max"};

// x viewed as [outer, dim, inner]; out is [outer, inner].
struct ReduceArgs {
  TensorRef out, x;
  ReduceOp op = ReduceOp::sum;
  int64_t outer = 0, dim = 0, inner = 0;
};

// out[:] = value (converted to out's dtype).
struct FillArgs {
  TensorRef out;
  double value = 0.0;
};

namespace cpu {
void copy(const ExecContext& ctx, const CopyArgs& args);
void binary(const ExecContext& ctx, const BinaryArgs& args);
void unary(const ExecContext& ctx, const UnaryArgs& args);
void matmul(const ExecContext& ctx, const MatmulArgs& args);
void softmax(const ExecContext& ctx, const SoftmaxArgs& args);
void reduce(const ExecContext& ctx, const ReduceArgs& args);
void fill(const ExecContext& ctx, const FillArgs& args);
}  // namespace cpu

// CUDA twins (cuda/*.cu). They launch on the device stream of the tensors' device and throw
// sv::Error on a failed launch.
namespace cuda {
void copy(const ExecContext& ctx, const CopyArgs& args);
void binary(const ExecContext& ctx, const BinaryArgs& args);
void unary(const ExecContext& ctx, const UnaryArgs& args);
void matmul(const ExecContext& ctx, const MatmulArgs& args);
void softmax(const ExecContext& ctx, const SoftmaxArgs& args);
void reduce(const ExecContext& ctx, const ReduceArgs& args);
void fill(const ExecContext& ctx, const FillArgs& args);
}  // namespace cuda

}  // namespace sv
