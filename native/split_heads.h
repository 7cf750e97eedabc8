// Head split + QK-Norm + 3D RoPE: the step between a fused attention projection and attention.
// The projection output holds, for every token, each head's parts side by side
// ([B, N, H, parts, Dh]: DiT wqkv is per head [q | k | v], wkv is [k | v], wq is [q]). One pass
// reads each part straight from there and writes it in the attention layout [B, H, N, Dh]:
//   q, k: RMSNorm over Dh when a weight is given (f32 statistics; the normalised value is rounded
//         to the tensor dtype before the weight, then again after it, as the official RMSNorm);
//         then 3D RoPE when a table is given (self-attention only);
//   v:    copied unchanged.
#pragma once
#include <cstdint>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

// 3D rotary embedding over a (frames, rows, cols) grid of tokens, token n = (f·rows + y)·cols + x.
// The head dimension splits into three slices of widths split[0..2] (DiT: 64, 32, 32) driven by
// the positions f, y and x. Inside a slice of width S, element i pairs with i ± S/2 (rotate-half):
//   out[i] = x[i]·cos[p][i mod S/2] - x[i + S/2]·sin[p][i mod S/2]    (i <  S/2)
//   out[i] = x[i]·cos[p][i mod S/2] + x[i - S/2]·sin[p][i mod S/2]    (i >= S/2)
// The table is f32 [2, T]: row 0 cos, row 1 sin; axis a occupies grid[a]·split[a]/2 entries
// starting at offset(a) = Σ_{b<a} grid[b]·split[b]/2, position-major. The tables are built on the
// host (lib/kernels/rope.ts), which is where the official bf16 angle rounding is reproduced.
struct Rope3dTable {
  TensorRef table;  // data == nullptr: no RoPE
  int64_t grid[3] = {0, 0, 0};
  int64_t split[3] = {0, 0, 0};
};

struct SplitHeadsArgs {
  TensorRef proj;     // [batch, tokens, heads · parts · head_dim]
  TensorRef q, k, v;  // [batch, heads, tokens, head_dim]; data == nullptr for a part not produced
  TensorRef q_norm, k_norm;  // RMSNorm weights [head_dim]; data == nullptr: no norm
  Rope3dTable rope;          // applied to q and k
  int64_t batch = 0, tokens = 0, heads = 0, parts = 0, head_dim = 0;
  int32_t q_part = -1, k_part = -1, v_part = -1;  // index of each part inside a head's group
  float eps = 1e-6f;
};

// The input gradient of split_heads (training): the gradients of the parts [batch, heads, tokens,
// head_dim] (data == nullptr: that part's gradient is zero) scattered back into dproj, laid out as
// proj. For q and k, RoPE's transpose first (the rotation by -angle; in a slice of width S):
//   dx[i] = dy[i]·cos[p][i mod S/2] + dy[i + S/2]·sin[p][i mod S/2]    (i <  S/2)
//   dx[i] = dy[i]·cos[p][i mod S/2] - dy[i - S/2]·sin[p][i mod S/2]    (i >= S/2)
// then the RMSNorm backward with the weight w [head_dim]:
// with n = x·rstd from the forward's input row x of proj and g = d·w,
//   dx = rstd · (g - n · mean(g · n)).
// The forward's rounding of n to the dtype before the weight is not differentiated (its derivative
// is taken as 1: a straight-through rounding). v is a plain scatter.
struct SplitHeadsBackwardArgs {
  TensorRef dproj;       // out [batch, tokens, heads · parts · head_dim]
  TensorRef proj;        // the forward's input: the norms' statistics are recomputed from it
  TensorRef dq, dk, dv;  // [batch, heads, tokens, head_dim]; data == nullptr: zero gradient
  TensorRef q_norm, k_norm;
  Rope3dTable rope;
  int64_t batch = 0, tokens = 0, heads = 0, parts = 0, head_dim = 0;
  int32_t q_part = -1, k_part = -1, v_part = -1;
  float eps = 1e-6f;
};

// Largest head dimension the kernels support (the CUDA kernel keeps one row per warp on chip).
constexpr int64_t kSplitHeadsMaxHeadDim = 256;

namespace cpu {
void split_heads(const ExecContext& ctx, const SplitHeadsArgs& args);
void split_heads_backward(const ExecContext& ctx, const SplitHeadsBackwardArgs& args);
}  // namespace cpu
namespace cuda {
void split_heads(const ExecContext& ctx, const SplitHeadsArgs& args);
void split_heads_backward(const ExecContext& ctx, const SplitHeadsBackwardArgs& args);
}  // namespace cuda

}  // namespace sv
