// Normalisation kernels: LayerNorm (optionally affine, optionally AdaLN-modulated), RMSNorm, and
// GroupNorm per frame (optionally fused with SiLU).
// Statistics are always computed in f32; outputs are stored in the tensor's dtype.
#pragma once
#include <cstdint>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

// x viewed as [rows, dim]. y = (x - mean) / sqrt(var + eps) · weight + bias (weight/bias [dim],
// optional: data == nullptr); then, if scale/shift are given ([groups, dim] with
// group = row / rows_per_group), y = y · (1 + scale[group]) + shift[group]: the AdaLN modulation.
struct LayerNormArgs {
  TensorRef out, x, weight, bias, scale, shift;
  int64_t rows = 0, dim = 0, rows_per_group = 1;
  float eps = 1e-5f;
};

// x viewed as [rows, dim]. n = x · rsqrt(mean(x²) + eps) in f32; n is rounded to out's dtype
// before it is multiplied by weight [dim] (the official RMSNorm returns n in the input dtype and
// then applies the weight), and the product is rounded again.
struct RmsNormArgs {
  TensorRef out, x, weight;
  int64_t rows = 0, dim = 0;
  float eps = 1e-6f;
};

// The input gradient of layer_norm for dy [rows, dim] (training: the norm's weight and the
// modulation are frozen, so no weight gradients). bias and shift do not enter dx; with
// g = dy · weight · (1 + scale[group]) and x̂ = (x - mean) · rstd recomputed from x:
//   dx = rstd · (g - mean(g) - x̂ · mean(g · x̂)).
struct LayerNormBackwardArgs {
  TensorRef dx, dy, x, weight, scale;
  int64_t rows = 0, dim = 0, rows_per_group = 1;
  float eps = 1e-5f;
};

// Channels-last frames x [frames, pixels, channels] (pixels = H·W of one frame). Statistics per
// (frame, group of channels / groups); affine weight/bias [channels]; optional SiLU after.
struct GroupNormArgs {
  TensorRef out, x, weight, bias;
  int64_t frames = 0, pixels = 0, channels = 0, groups = 32;
  float eps = 1e-5f;
  bool silu = false;
};

namespace cpu {
void layer_norm(const ExecContext& ctx, const LayerNormArgs& args);
void layer_norm_backward(const ExecContext& ctx, const LayerNormBackwardArgs& args);
void rms_norm(const ExecContext& ctx, const RmsNormArgs& args);
void group_norm(const ExecContext& ctx, const GroupNormArgs& args);
}  // namespace cpu

namespace cuda {
void layer_norm(const ExecContext& ctx, const LayerNormArgs& args);
void layer_norm_backward(const ExecContext& ctx, const LayerNormBackwardArgs& args);
void rms_norm(const ExecContext& ctx, const RmsNormArgs& args);
void group_norm(const ExecContext& ctx, const GroupNormArgs& args);
}  // namespace cuda

}  // namespace sv
