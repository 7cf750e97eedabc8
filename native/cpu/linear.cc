// CPU reference for native/linear.h: the gated-residual linear as the f32 GEMM followed by the
// residual add (the CUDA path fuses the add into the GEMM's epilogue).
#include <vector>

#include "../kernels.h"
#include "../linear.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

void linear_residual(const ExecContext& ctx, const LinearResidualArgs& a) {
  require_f32(a.out, "linear_residual", "out");
  require_f32(a.x, "linear_residual", "x");
  std::vector<float> product(static_cast<size_t>(a.rows * a.n));
  MatmulArgs m;
  m.out = a.out;  // shape and dtype; data replaced below
  m.out.data = product.data();
  m.a = a.x;
  m.b = a.weight;
  m.batch = 1;
  m.m = a.rows;
  m.n = a.n;
  m.k = a.k;
  m.trans_b = true;
  matmul(ctx, m);
  const float* residual = a.residual.as<float>();
  const float* gate = a.gate.data ? a.gate.as<float>() : nullptr;
  float* out = a.out.as<float>();
  const int64_t n = a.n;
  parallel_for(a.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const float* g = gate ? gate + (r / a.rows_per_group) * n : nullptr;
      for (int64_t j = 0; j < n; j++) {
        const float y = product[r * n + j];
        out[r * n + j] = residual[r * n + j] + (g ? g[j] * y : y);
      }
    }
  });
}

}  // namespace sv::cpu
