// Convolution on channels-last video: the causal 3D convolutions of the video VAE (kernel 3 or 1,
// stride 1 or 2) and its per-frame 2D convolutions (a temporal kernel of 1), as one implicit GEMM.
//
// Layouts:
//   x        [B, T, H, W, Cin]            activations, channels last
//   weight   [Cout, kt, kh, kw, Cin]      repacked at load time from PyTorch's [Cout, Cin, kt, kh, kw]:
//                                         row n of the GEMM's B operand is output channel n, its K
//                                         index k = ((dt·kh + dh)·kw + dw)·Cin + ci is contiguous, so
//                                         a K-slice of one tap is one 16-byte-aligned run of channels
//   out      [B, To, Ho, Wo, Cout]        residual (optional) has out's shape and is added
//
// The convolution reads a *virtual* input xv: x nearest-upsampled by (up_t, up_s, up_s) (powers of
// two) and then zero-padded by pad_front frames before the first frame (the causal padding, also the
// "two zero frames after the norm" of CausalConvAfterNorm: nothing is materialised), pad_top rows and
// pad_left columns; reads past the far edges (the back / bottom / right pads) are zero as well:
//
//   out[b, to, ho, wo, co] = bias[co] + residual[b, to, ho, wo, co]
//     + Σ_{dt, dh, dw, ci} xv[b, to·st + dt − pad_front, ho·sh + dh − pad_top, wo·sw + dw − pad_left, ci]
//                          · weight[co, dt, dh, dw, ci]
//
// Accumulation is f32 on both backends; the result is rounded once to out's dtype.
#pragma once
#include <cstdint>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

struct Conv3dArgs {
  TensorRef out, x, weight;
  TensorRef bias;      // optional [Cout] (data == nullptr when absent)
  TensorRef residual;  // optional, out's shape
  int64_t batch = 0, in_t = 0, in_h = 0, in_w = 0, in_ch = 0;
  int64_t out_t = 0, out_h = 0, out_w = 0, out_ch = 0;
  int32_t kt = 1, kh = 1, kw = 1;
  int32_t stride_t = 1, stride_h = 1, stride_w = 1;
  int32_t pad_front = 0, pad_top = 0, pad_left = 0;
  int32_t up_t = 1, up_s = 1;

  int64_t taps() const { return static_cast<int64_t>(kt) * kh * kw; }
  int64_t gemm_k() const { return taps() * in_ch; }
  int64_t gemm_m() const { return batch * out_t * out_h * out_w; }
};

namespace cpu {
void conv3d(const ExecContext& ctx, const Conv3dArgs& args);
}  // namespace cpu

namespace cuda {
void conv3d(const ExecContext& ctx, const Conv3dArgs& args);
// Which kernel conv3d picks for these arguments ("mma-128x128", "simt", ...): for benchmarks and tests.
const char* conv3d_kernel_name(const ExecContext& ctx, const Conv3dArgs& args);
}  // namespace cuda

}  // namespace sv
