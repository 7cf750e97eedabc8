// GEMM variants beyond ops.matmul: the gated-residual linear of AdaLN blocks (the residual add
// fused into the GEMM's epilogue on CUDA), and what the cuBLASLt layer reports about its plans.
#pragma once
#include <cstdint>
#include <vector>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

// out = residual + gate[group] ⊙ (x · weightᵀ), computed in f32 and rounded once to out's dtype.
// x [rows, k], weight [n, k] (nn.Linear layout), residual and out [rows, n], gate [groups, n]
// (optional, data == nullptr: a plain residual add) with group = row / rows_per_group.
struct LinearResidualArgs {
  TensorRef out, x, weight, residual, gate;
  int64_t rows = 0, n = 0, k = 0, rows_per_group = 1;
};

// One cuBLASLt plan (a shape and epilogue the GEMM layer has described once), with what
// autotuning measured: the heuristic's candidates, each timed once, and the one kept.
struct GemmPlanInfo {
  const char* kind = "";  // "matmul", "residual", "fp8"
  int device = 0;
  int64_t m = 0, n = 0, k = 0, batch = 1;
  int candidates = 0;
  int chosen = 0;       // index into the heuristic's list
  bool tuned = false;   // the timings are in and `chosen` is the fastest
  std::vector<float> candidate_ms;
};

namespace cpu {
void linear_residual(const ExecContext& ctx, const LinearResidualArgs& args);
}  // namespace cpu

namespace cuda {
void linear_residual(const ExecContext& ctx, const LinearResidualArgs& args);
std::vector<GemmPlanInfo> gemm_plans();
}  // namespace cuda

}  // namespace sv
