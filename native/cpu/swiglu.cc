// CPU reference for native/swiglu.h, in double before the final rounding.
#include <cmath>

#include "../swiglu.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

void swiglu(const ExecContext& ctx, const SwigluArgs& a) {
  require_f32(a.out, "swiglu", "out");
  require_f32(a.x, "swiglu", "x");
  const float* x = a.x.as<const float>();
  float* out = a.out.as<float>();
  const int64_t half = a.half;
  parallel_for(a.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, half)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const float* gate = x + r * 2 * half;
      const float* up = gate + half;
      float* o = out + r * half;
      for (int64_t j = 0; j < half; j++) {
        const double g = gate[j];
        o[j] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[j]);
      }
    }
  });
}

}  // namespace sv::cpu
