// CPU reference: softmax over the last dimension and sum/mean/max over one dimension, f32 data
// with double accumulation so the reference stays well inside the 1e-4 golden tolerance.
#include <cmath>
#include <limits>
#include <vector>

#include "../kernels.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

void softmax(const ExecContext& ctx, const SoftmaxArgs& args) {
  require_f32(args.out, "softmax", "out");
  require_f32(args.x, "softmax", "x");
  const float* x = args.x.as<float>();
  float* out = args.out.as<float>();
  const int64_t cols = args.cols;
  parallel_for(args.rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, cols)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const float* xr = x + r * cols;
      float* orow = out + r * cols;
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < cols; j++) max = std::fmax(max, xr[j]);
      double sum = 0.0;
      for (int64_t j = 0; j < cols; j++) {
        // A row of all -inf (fully masked) gives zeros rather than NaN.
        float e = max == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(xr[j] - max);
        orow[j] = e;
        sum += e;
      }
      const float scale = sum > 0.0 ? static_cast<float>(1.0 / sum) : 0.0f;
      for (int64_t j = 0; j < cols; j++) orow[j] *= scale;
    }
  });
}

void reduce(const ExecContext& ctx, const ReduceArgs& args) {
  require_f32(args.out, "reduce", "out");
  require_f32(args.x, "reduce", "x");
  const float* x = args.x.as<float>();
  float* out = args.out.as<float>();
  const int64_t dim = args.dim, inner = args.inner;
  parallel_for(args.outer * inner, 256, [&](int64_t begin, int64_t end) {
    for (int64_t idx = begin; idx < end; idx++) {
      const int64_t o = idx / inner, i = idx % inner;
      const float* base = x + o * dim * inner + i;
      if (args.op == ReduceOp::max) {
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t d = 0; d < dim; d++) m = std::fmax(m, base[d * inner]);
        out[idx] = m;
      } else {
        double s = 0.0;
        for (int64_t d = 0; d < dim; d++) s += base[d * inner];
        out[idx] = static_cast<float>(args.op == ReduceOp::mean ? (dim > 0 ? s / dim : NAN) : s);
      }
    }
  });
}

}  // namespace sv::cpu
