// CPU reference for native/residual.h, f32.
#include <algorithm>

#include "../residual.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

void gated_residual(const ExecContext& ctx, const GatedResidualArgs& a) {
  require_f32(a.out, "gated_residual", "out");
  const float* x = a.x.as<float>();
  const float* y = a.y.as<float>();
  const float* gate = a.gate.data ? a.gate.as<float>() : nullptr;
  float* out = a.out.as<float>();
  const int64_t dim = a.dim;
  parallel_for(a.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const float* gr = gate ? gate + (r / a.rows_per_group) * dim : nullptr;
      for (int64_t j = 0; j < dim; j++) {
        const int64_t i = r * dim + j;
        out[i] = x[i] + (gr ? gr[j] * y[i] : y[i]);
      }
    }
  });
}

}  // namespace sv::cpu
