// The gated residual of AdaLN blocks: the residual add after attention and the MLP, scaled by the
// block's gate (the GEMM that can fuse it into its epilogue is native/linear.h's linear_residual).
#pragma once
#include <cstdint>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

// out = x + gate[group] ⊙ y with x, y viewed [rows, dim] and gate [groups, dim],
// group = row / rows_per_group. gate may be absent (plain residual add).
struct GatedResidualArgs {
  TensorRef out, x, y, gate;
  int64_t rows = 0, dim = 0, rows_per_group = 1;
};

namespace cpu {
void gated_residual(const ExecContext& ctx, const GatedResidualArgs& args);
}  // namespace cpu

namespace cuda {
void gated_residual(const ExecContext& ctx, const GatedResidualArgs& args);
}  // namespace cuda

}  // namespace sv
