// Fused elementwise kernels of the video VAE.
//
// Upsample3D's double residual: out = SiLU(h + up(x)) + up(x), where up(x) is x nearest-upsampled by
// (up_t, up_s, up_s). up(x) is read on the fly (x is 4 to 8 times smaller than h), so the upsampled
// tensor is never materialised. Layouts channels-last: h, out [B, T, H, W, C]; x [B, T/up_t, H/up_s,
// W/up_s, C]. f32 arithmetic, one rounding to out's dtype.
#pragma once
#include <cstdint>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

struct UpsampleResidualArgs {
  TensorRef out, h, x;
  int64_t batch = 0, frames = 0, height = 0, width = 0, channels = 0;  // of h and out
  int32_t up_t = 1, up_s = 1;
};

namespace cpu {
void upsample_residual(const ExecContext& ctx, const UpsampleResidualArgs& args);
}  // namespace cpu

namespace cuda {
void upsample_residual(const ExecContext& ctx, const UpsampleResidualArgs& args);
}  // namespace cuda

}  // namespace sv
