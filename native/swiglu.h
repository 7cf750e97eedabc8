// SwiGLU activation fused over the two halves of the gate/up projection (Step-LLM's w1 output):
// x viewed as [rows, 2·F] gives out [rows, F] with out[r, j] = silu(x[r, j]) · x[r, F + j].
// One read of x and one write of out, instead of two slice copies, a SiLU and a product.
// Computed in f32 and rounded once to out's dtype.
#pragma once
#include <cstdint>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

struct SwigluArgs {
  TensorRef out, x;
  int64_t rows = 0, half = 0;  // x [rows, 2·half], out [rows, half]
};

namespace cpu {
void swiglu(const ExecContext& ctx, const SwigluArgs& args);
}
namespace cuda {
void swiglu(const ExecContext& ctx, const SwigluArgs& args);
}

}  // namespace sv
