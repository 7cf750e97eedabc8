// Elementwise work of the flow-matching sampler between two model calls, fused into one pass:
// classifier-free guidance, the Euler update of the f32 latents, and the cast of the new latents
// to the model dtype for the next call.
#pragma once
#include <cstdint>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

// x: f32 [n], the latents, updated in place. velocity: the model output in its dtype T,
// [copies·n] with copies = 2 under guidance (first n: the conditional rows, next n: the
// unconditional rows) and 1 without.
//   guidance:  v = u + g·(c − u), each of the three operations rounded to T (the official code
//              combines in the model dtype: bf16 on the GPU path; exact f32 when T = f32);
//   otherwise: v = velocity.
//   x ← x + v·dt in f32, product and sum each rounded to f32 (the official `sample + v.float()·dt`).
// next_input (optional: data == nullptr): [copies·n] of T, receives the new x rounded to T in
// every copy: the next model input [x, x].
struct CfgEulerArgs {
  TensorRef x, velocity, next_input;
  int64_t n = 0;
  bool guidance = false;
  float guidance_scale = 1.0f;
  float dt = 0.0f;
};

namespace cpu {
void cfg_euler_step(const ExecContext& ctx, const CfgEulerArgs& args);
}  // namespace cpu

namespace cuda {
void cfg_euler_step(const ExecContext& ctx, const CfgEulerArgs& args);
}  // namespace cuda

}  // namespace sv
