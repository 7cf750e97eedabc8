// CPU reference of native/sampler.h (f32 only, so the roundings to T are the f32 ones).
#include "../sampler.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

void cfg_euler_step(const ExecContext& ctx, const CfgEulerArgs& a) {
  require_f32(a.x, "cfg_euler_step", "x");
  require_f32(a.velocity, "cfg_euler_step", "velocity");
  if (a.next_input.data) require_f32(a.next_input, "cfg_euler_step", "next_input");
  float* x = a.x.as<float>();
  const float* cond = a.velocity.as<float>();
  const float* uncond = a.guidance ? cond + a.n : nullptr;
  float* next = a.next_input.data ? a.next_input.as<float>() : nullptr;
  const int64_t copies = a.guidance ? 2 : 1;
  parallel_for(a.n, 16384, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      float v = cond[i];
      if (uncond) {
        const float difference = cond[i] - uncond[i];
        const float scaled = a.guidance_scale * difference;
        v = uncond[i] + scaled;
      }
      const float step = v * a.dt;
      const float updated = x[i] + step;
      x[i] = updated;
      if (next)
        for (int64_t c = 0; c < copies; c++) next[c * a.n + i] = updated;
    }
  });
}

}  // namespace sv::cpu
