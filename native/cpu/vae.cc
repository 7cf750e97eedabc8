// CPU reference of native/vae.h, f32.
#include <cmath>

#include "../vae.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

void upsample_residual(const ExecContext& ctx, const UpsampleResidualArgs& a) {
  require_f32(a.out, "upsample_residual", "out");
  require_f32(a.h, "upsample_residual", "h");
  require_f32(a.x, "upsample_residual", "x");
  const float* h = a.h.as<float>();
  const float* x = a.x.as<float>();
  float* out = a.out.as<float>();
  const int64_t C = a.channels, x_t = a.frames / a.up_t, x_h = a.height / a.up_s, x_w = a.width / a.up_s;
  const int64_t pixels = a.batch * a.frames * a.height * a.width;
  parallel_for(pixels, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, C)), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; p++) {
      const int64_t w = p % a.width, y = (p / a.width) % a.height, t = (p / (a.width * a.height)) % a.frames;
      const int64_t b = p / (a.width * a.height * a.frames);
      const float* xr = x + (((b * x_t + t / a.up_t) * x_h + y / a.up_s) * x_w + w / a.up_s) * C;
      for (int64_t c = 0; c < C; c++) {
        const float s = h[p * C + c] + xr[c];
        out[p * C + c] = s / (1.0f + std::exp(-s)) + xr[c];
      }
    }
  });
}

}  // namespace sv::cpu
