// CPU reference for native/norm.h, f32 with double-precision statistics.
#include <cmath>
#include <vector>

#include "../norm.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {
namespace {

// The statistics of one row of x as layer_norm computes them (its backward recomputes them the
// same way): a two-pass mean and variance in double, rstd = 1 / sqrt(var + eps).
struct RowStats {
  double mean, rstd;
};

RowStats row_stats(const float* xr, int64_t dim, float eps) {
  double mean = 0.0;
  for (int64_t j = 0; j < dim; j++) mean += xr[j];
  mean /= static_cast<double>(dim);
  double var = 0.0;
  for (int64_t j = 0; j < dim; j++) var += (xr[j] - mean) * (xr[j] - mean);
  var /= static_cast<double>(dim);
  return {mean, 1.0 / std::sqrt(var + eps)};
}

}  // namespace

void layer_norm(const ExecContext& ctx, const LayerNormArgs& a) {
  require_f32(a.out, "layer_norm", "out");
  require_f32(a.x, "layer_norm", "x");
  const float* x = a.x.as<float>();
  float* out = a.out.as<float>();
  const float* w = a.weight.data ? a.weight.as<float>() : nullptr;
  const float* b = a.bias.data ? a.bias.as<float>() : nullptr;
  const float* scale = a.scale.data ? a.scale.as<float>() : nullptr;
  const float* shift = a.shift.data ? a.shift.as<float>() : nullptr;
  const int64_t dim = a.dim;
  parallel_for(a.rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, dim)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const float* xr = x + r * dim;
      const RowStats s = row_stats(xr, dim, a.eps);
      const int64_t g = r / a.rows_per_group;
      const float* sc = scale ? scale + g * dim : nullptr;
      const float* sh = shift ? shift + g * dim : nullptr;
      float* o = out + r * dim;
      for (int64_t j = 0; j < dim; j++) {
        double y = (xr[j] - s.mean) * s.rstd;
        if (w) y *= w[j];
        if (b) y += b[j];
        if (sc) y *= 1.0 + sc[j];
        if (sh) y += sh[j];
        o[j] = static_cast<float>(y);
      }
    }
  });
}

void layer_norm_backward(const ExecContext& ctx, const LayerNormBackwardArgs& a) {
  require_f32(a.dx, "layer_norm_backward", "dx");
  require_f32(a.dy, "layer_norm_backward", "dy");
  require_f32(a.x, "layer_norm_backward", "x");
  const float* dy = a.dy.as<float>();
  const float* x = a.x.as<float>();
  float* dx = a.dx.as<float>();
  const float* w = a.weight.data ? a.weight.as<float>() : nullptr;
  const float* scale = a.scale.data ? a.scale.as<float>() : nullptr;
  const int64_t dim = a.dim;
  parallel_for(a.rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, dim)), [&](int64_t begin, int64_t end) {
    std::vector<double> g(static_cast<size_t>(dim)), xhat(static_cast<size_t>(dim));
    for (int64_t r = begin; r < end; r++) {
      const float* xr = x + r * dim;
      const float* dyr = dy + r * dim;
      const RowStats s = row_stats(xr, dim, a.eps);  // the forward's statistics
      const float* sc = scale ? scale + (r / a.rows_per_group) * dim : nullptr;
      // g: the gradient that reaches x̂ (through the weight and the modulation's factor).
      double mean_g = 0.0, mean_gx = 0.0;
      for (int64_t j = 0; j < dim; j++) {
        double gj = dyr[j];
        if (w) gj *= w[j];
        if (sc) gj *= 1.0 + sc[j];
        xhat[j] = (xr[j] - s.mean) * s.rstd;
        g[j] = gj;
        mean_g += gj;
        mean_gx += gj * xhat[j];
      }
      mean_g /= static_cast<double>(dim);
      mean_gx /= static_cast<double>(dim);
      float* o = dx + r * dim;
      for (int64_t j = 0; j < dim; j++) o[j] = static_cast<float>(s.rstd * (g[j] - mean_g - xhat[j] * mean_gx));
    }
  });
}

void rms_norm(const ExecContext& ctx, const RmsNormArgs& a) {
  require_f32(a.out, "rms_norm", "out");
  require_f32(a.x, "rms_norm", "x");
  const float* x = a.x.as<float>();
  float* out = a.out.as<float>();
  const float* w = a.weight.data ? a.weight.as<float>() : nullptr;
  const int64_t dim = a.dim;
  parallel_for(a.rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(1, dim)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const float* xr = x + r * dim;
      double ss = 0.0;
      for (int64_t j = 0; j < dim; j++) ss += static_cast<double>(xr[j]) * xr[j];
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(dim) + a.eps);
      float* o = out + r * dim;
      for (int64_t j = 0; j < dim; j++) o[j] = static_cast<float>(xr[j] * inv * (w ? w[j] : 1.0f));
    }
  });
}

void group_norm(const ExecContext& ctx, const GroupNormArgs& a) {
  require_f32(a.out, "group_norm", "out");
  require_f32(a.x, "group_norm", "x");
  const float* x = a.x.as<float>();
  float* out = a.out.as<float>();
  const float* w = a.weight.as<float>();
  const float* b = a.bias.as<float>();
  const int64_t pixels = a.pixels, channels = a.channels, per_group = channels / a.groups;
  parallel_for(a.frames * a.groups, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; item++) {
      const int64_t f = item / a.groups, g = item % a.groups, c0 = g * per_group;
      const float* xf = x + f * pixels * channels;
      float* of = out + f * pixels * channels;
      double mean = 0.0;
      for (int64_t p = 0; p < pixels; p++)
        for (int64_t c = 0; c < per_group; c++) mean += xf[p * channels + c0 + c];
      const double count = static_cast<double>(pixels * per_group);
      mean /= count;
      double var = 0.0;
      for (int64_t p = 0; p < pixels; p++)
        for (int64_t c = 0; c < per_group; c++) {
          double d = xf[p * channels + c0 + c] - mean;
          var += d * d;
        }
      const double inv = 1.0 / std::sqrt(var / count + a.eps);
      for (int64_t p = 0; p < pixels; p++)
        for (int64_t c = 0; c < per_group; c++) {
          const int64_t idx = p * channels + c0 + c;
          double y = (xf[idx] - mean) * inv * w[c0 + c] + b[c0 + c];
          if (a.silu) y = y / (1.0 + std::exp(-y));
          of[idx] = static_cast<float>(y);
        }
    }
  });
}

}  // namespace sv::cpu
