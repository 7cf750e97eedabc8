// CUDA twin of native/cpu/sampler.cc: one grid-stride pass that reads both velocity halves in the
// model dtype, applies guidance with the official roundings, updates the f32 latents and writes
// the next model input. Explicit round-to-nearest intrinsics keep nvcc from contracting the
// operations into FMAs, so every rounding happens where the official code rounds.
#include "../native/sampler.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

// Rounds an f32 value to T and back (identity for f32).
template <typename T>
__device__ __forceinline__ float round_to(float v) {
  return to_f32(from_f32<T>(v));
}

template <typename T>
__global__ void cfg_euler_kernel(float* __restrict__ x, const T* __restrict__ velocity, T* __restrict__ next, int64_t n,
                                 bool guidance, float guidance_scale, float dt) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    float v = to_f32(velocity[i]);
    if (guidance) {
      const float uncond = to_f32(velocity[n + i]);
      const float difference = round_to<T>(__fsub_rn(v, uncond));
      const float scaled = round_to<T>(__fmul_rn(guidance_scale, difference));
      v = round_to<T>(__fadd_rn(uncond, scaled));
    }
    const float updated = __fadd_rn(x[i], __fmul_rn(v, dt));
    x[i] = updated;
    if (next) {
      const T rounded = from_f32<T>(updated);
      next[i] = rounded;
      if (guidance) next[n + i] = rounded;
    }
  }
}

}  // namespace

void cfg_euler_step(const ExecContext& ctx, const CfgEulerArgs& a) {
  use_device(ctx.device);
  if (a.n == 0) return;
  dispatch_float(a.velocity.dtype, "cfg_euler_step", [&](auto t) {
    using T = decltype(t);
    T* next = a.next_input.data ? a.next_input.as<T>() : nullptr;
    launch(SV_HERE, cfg_euler_kernel<T>, grid_for(a.n, 256), 256, 0, work_stream(ctx), a.x.as<float>(),
           a.velocity.as<const T>(), next, a.n, a.guidance, a.guidance_scale, a.dt);
  });
}

}  // namespace sv::cuda
