// CPU reference for native/split_heads.h, f32 with double-precision statistics. Work is split over
// tokens; each (token, head) row is normalised and rotated in a small local buffer.
#include <cmath>
#include <vector>

#include "../split_heads.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {
namespace {

// Where a head-dim element d reads its rotation: table entry, partner element and partner sign.
struct RopeLane {
  int64_t entry;  // index into one row of the table (cos or sin)
  int64_t partner;
  float sign;
};

// For token n: the table entry and partner of every element of a head (split_heads.h's formula).
void rope_lanes(const Rope3dTable& rope, int64_t n, std::vector<RopeLane>& lanes) {
  const int64_t position[3] = {n / (rope.grid[1] * rope.grid[2]), (n / rope.grid[2]) % rope.grid[1], n % rope.grid[2]};
  int64_t start = 0, offset = 0;
  for (int axis = 0; axis < 3; axis++) {
    const int64_t width = rope.split[axis], half = width / 2;
    for (int64_t i = 0; i < width; i++) {
      const bool first = i < half;
      lanes[start + i] = RopeLane{offset + position[axis] * half + (first ? i : i - half),
                                  start + (first ? i + half : i - half), first ? -1.0f : 1.0f};
    }
    start += width;
    offset += rope.grid[axis] * half;
  }
}

// The f32 data of an optional tensor, nullptr when it is absent.
const float* f32_or_null(const TensorRef& t) { return t.data ? t.as<float>() : nullptr; }

// RMSNorm's 1 / sqrt(mean(x²) + eps) of a row of n elements, in double (forward and backward).
double rms_rstd(const float* x, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; i++) ss += static_cast<double>(x[i]) * x[i];
  return 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
}

// Runs body(token, b, n, h, lanes, row) for every (token, head) of a split, tokens in parallel:
// token = b·tokens + n, lanes holds token n's RoPE lanes where there is a table, and row is a
// per-thread buffer of head_dim values (forward and backward).
template <typename Value, typename Body>
void for_each_head(int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim, const Rope3dTable& rope,
                   Body&& body) {
  parallel_for(batch * tokens, std::max<int64_t>(1, 64 / std::max<int64_t>(1, heads)), [&](int64_t begin, int64_t end) {
    std::vector<Value> row(static_cast<size_t>(head_dim));
    std::vector<RopeLane> lanes(static_cast<size_t>(head_dim));
    for (int64_t token = begin; token < end; token++) {
      const int64_t b = token / tokens, n = token % tokens;
      if (rope.table.data) rope_lanes(rope, n, lanes);
      for (int64_t h = 0; h < heads; h++) body(token, b, n, h, lanes, row);
    }
  });
}

}  // namespace

void split_heads(const ExecContext& ctx, const SplitHeadsArgs& a) {
  require_f32(a.proj, "split_heads", "proj");
  const float* proj = a.proj.as<float>();
  const int64_t N = a.tokens, H = a.heads, Dh = a.head_dim;
  const float* cos_table = f32_or_null(a.rope.table);
  const float* sin_table = cos_table ? cos_table + a.rope.table.size(-1) : nullptr;
  struct Role {
    const TensorRef* out;
    int32_t part;
    const float* norm;  // RMSNorm weight, nullptr: no norm
    bool rope;
  };
  const Role roles[3] = {{&a.q, a.q_part, f32_or_null(a.q_norm), cos_table != nullptr},
                         {&a.k, a.k_part, f32_or_null(a.k_norm), cos_table != nullptr},
                         {&a.v, a.v_part, nullptr, false}};
  for (const Role& role : roles)
    if (role.out->data) require_f32(*role.out, "split_heads", "out");
  for_each_head<float>(a.batch, N, H, Dh, a.rope, [&](int64_t token, int64_t b, int64_t n, int64_t h,
                                                      const std::vector<RopeLane>& lanes, std::vector<float>& row) {
    for (const Role& role : roles) {
      if (!role.out->data) continue;
      const float* src = proj + ((token * H + h) * a.parts + role.part) * Dh;
      float* dst = role.out->as<float>() + ((b * H + h) * N + n) * Dh;
      if (role.norm) {
        const double inv = rms_rstd(src, Dh, a.eps);
        for (int64_t d = 0; d < Dh; d++) row[d] = static_cast<float>(src[d] * inv) * role.norm[d];
      } else {
        for (int64_t d = 0; d < Dh; d++) row[d] = src[d];
      }
      if (role.rope) {
        for (int64_t d = 0; d < Dh; d++) {
          const RopeLane& l = lanes[d];
          dst[d] = static_cast<float>(static_cast<double>(row[d]) * cos_table[l.entry] +
                                      static_cast<double>(l.sign) * row[l.partner] * sin_table[l.entry]);
        }
      } else {
        for (int64_t d = 0; d < Dh; d++) dst[d] = row[d];
      }
    }
  });
}

void split_heads_backward(const ExecContext& ctx, const SplitHeadsBackwardArgs& a) {
  require_f32(a.dproj, "split_heads_backward", "dproj");
  require_f32(a.proj, "split_heads_backward", "proj");
  const float* proj = a.proj.as<float>();
  float* dproj = a.dproj.as<float>();
  const int64_t N = a.tokens, H = a.heads, Dh = a.head_dim;
  const float* cos_table = f32_or_null(a.rope.table);
  const float* sin_table = cos_table ? cos_table + a.rope.table.size(-1) : nullptr;
  for (const TensorRef* grad : {&a.dq, &a.dk, &a.dv})
    if (grad->data) require_f32(*grad, "split_heads_backward", "grad");
  // What each part of a head's group is: its gradient (nullptr: zero), norm weight, RoPE.
  struct Role {
    const float* grad = nullptr;
    const float* norm = nullptr;
    bool rope = false;
  };
  std::vector<Role> roles(static_cast<size_t>(a.parts));
  if (a.q_part >= 0) roles[a.q_part] = Role{f32_or_null(a.dq), f32_or_null(a.q_norm), cos_table != nullptr};
  if (a.k_part >= 0) roles[a.k_part] = Role{f32_or_null(a.dk), f32_or_null(a.k_norm), cos_table != nullptr};
  if (a.v_part >= 0) roles[a.v_part] = Role{f32_or_null(a.dv), nullptr, false};
  for_each_head<double>(a.batch, N, H, Dh, a.rope, [&](int64_t token, int64_t b, int64_t n, int64_t h,
                                                       const std::vector<RopeLane>& lanes, std::vector<double>& d) {
    for (int64_t part = 0; part < a.parts; part++) {
      const Role& role = roles[part];
      float* dst = dproj + ((token * H + h) * a.parts + part) * Dh;
      if (!role.grad) {
        for (int64_t i = 0; i < Dh; i++) dst[i] = 0.0f;
        continue;
      }
      const float* dy = role.grad + ((b * H + h) * N + n) * Dh;
      // RoPE's transpose: each pair rotated by -angle (the forward's partner sign flipped).
      for (int64_t i = 0; i < Dh; i++) {
        if (role.rope) {
          const RopeLane& l = lanes[i];
          d[i] = static_cast<double>(dy[i]) * cos_table[l.entry] -
                 static_cast<double>(l.sign) * dy[l.partner] * sin_table[l.entry];
        } else {
          d[i] = dy[i];
        }
      }
      if (role.norm) {
        // RMSNorm backward from the forward's input row: dx = rstd · (g - n · mean(g · n)).
        const float* x = proj + ((token * H + h) * a.parts + part) * Dh;
        const double rstd = rms_rstd(x, Dh, a.eps);
        double mean_gn = 0.0;
        for (int64_t i = 0; i < Dh; i++) mean_gn += d[i] * role.norm[i] * (x[i] * rstd);
        mean_gn /= static_cast<double>(Dh);
        for (int64_t i = 0; i < Dh; i++) d[i] = rstd * (d[i] * role.norm[i] - x[i] * rstd * mean_gn);
      }
      for (int64_t i = 0; i < Dh; i++) dst[i] = static_cast<float>(d[i]);
    }
  });
}

}  // namespace sv::cpu
