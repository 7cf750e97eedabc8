// Scaled dot-product attention, every variant this model family needs, in one kernel family:
//  - DiT self-attention: non-causal, head dim 128, N up to ~83k tokens;
//  - DiT cross-attention: keys limited per batch item to a prefix (kv_len);
//  - Step-LLM: causal, grouped-query (kv_heads < heads), ALiBi-sqrt bias;
//  - Hunyuan-CLIP (BERT): padding keys masked through kv_len;
//  - VAE mid-block: one head of dim 512, causal over flattened (t, h, w).
// Layouts: q [B, H, Nq, D], k/v [B, Hkv, Nk, D] (head-major, as the projection kernels write
// them), out [B, Nq, H, D] (token-major, so the output projection reads [B·Nq, H·D] directly).
#pragma once
#include <cstdint>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

struct AttentionArgs {
  TensorRef out, q, k, v;
  TensorRef kv_len;  // optional i32 [B]: key j is visible to batch item b iff j < kv_len[b]
  int64_t batch = 0, heads = 0, kv_heads = 0, q_len = 0, kv_len_max = 0, head_dim = 0;
  float scale = 1.0f;
  // Causal: query i sees key j iff j <= i + (kv_len_max - q_len) (bottom-right aligned).
  bool causal = false;
  // ALiBi-sqrt: logit += -slope_h · sqrt(i + offset - j), slopes of the standard ALiBi recipe
  // for `heads` heads (only meaningful with causal).
  bool alibi_sqrt = false;
};

// Standard ALiBi slopes: n = 2^floor(log2 H); slope_h = 2^(-8(h+1)/n) for h < n; the remaining
// heads take 2^(-4(2k+1)/n), k = 0, 1, ...
float alibi_slope(int64_t head, int64_t heads);

namespace cpu {
void attention(const ExecContext& ctx, const AttentionArgs& args);
}
namespace cuda {
void attention(const ExecContext& ctx, const AttentionArgs& args);
// The kernel attention() would run for these arguments under the current STEPVIDEO_ATTENTION:
// "generic", "mma" or "hopper" (a forced kernel that cannot take the call throws ERR_UNSUPPORTED).
const char* attention_kernel_name(const ExecContext& ctx, const AttentionArgs& args);
}

// The backward of non-causal attention without ALiBi, H == Hkv (the DiT's self- and
// cross-attention): the softmax is recomputed from q and k, nothing but the forward's output is
// saved. Key j of batch item b takes part iff j < kv_len[b]; masked keys get zero gradients, and a
// batch item with no visible key gets zeros everywhere (its forward output is zeros too).
struct AttentionBackwardArgs {
  TensorRef dq, dk, dv;       // dq [B, H, Nq, D]; dk, dv [B, H, Nk, D]
  TensorRef q, k, v;          // as the forward's
  TensorRef out, d_out;       // [B, Nq, H, D]: the forward's output and its gradient
  TensorRef kv_len;           // optional i32 [B]
  int64_t batch = 0, heads = 0, q_len = 0, kv_len_max = 0, head_dim = 0;
  float scale = 1.0f;
};

namespace cpu {
void attention_backward(const ExecContext& ctx, const AttentionBackwardArgs& args);
}
namespace cuda {
void attention_backward(const ExecContext& ctx, const AttentionBackwardArgs& args);
}

}  // namespace sv
