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

}  // namespace

void split_heads(const ExecContext& ctx, const SplitHeadsArgs& a) {
  require_f32(a.proj, "split_heads", "proj");
  const float* proj = a.proj.as<float>();
  const int64_t N = a.tokens, H = a.heads, Dh = a.head_dim;
  const float* cos_table = a.rope.table.data ? a.rope.table.as<float>() : nullptr;
  const float* sin_table = cos_table ? cos_table + a.rope.table.size(-1) : nullptr;
  struct Role {
    const TensorRef* out;
    int32_t part;
    const float* norm;  // RMSNorm weight, nullptr: no norm
    bool rope;
  };
  const auto weight_of = [](const TensorRef& w) { return w.data ? w.as<float>() : nullptr; };
  const Role roles[3] = {{&a.q, a.q_part, weight_of(a.q_norm), cos_table != nullptr},
                         {&a.k, a.k_part, weight_of(a.k_norm), cos_table != nullptr},
                         {&a.v, a.v_part, nullptr, false}};
  for (const Role& role : roles)
    if (role.out->data) require_f32(*role.out, "split_heads", "out");
  parallel_for(a.batch * N, std::max<int64_t>(1, 64 / std::max<int64_t>(1, H)), [&](int64_t begin, int64_t end) {
    std::vector<float> row(static_cast<size_t>(Dh));
    std::vector<RopeLane> lanes(static_cast<size_t>(Dh));
    for (int64_t token = begin; token < end; token++) {
      const int64_t b = token / N, n = token % N;
      if (cos_table) rope_lanes(a.rope, n, lanes);
      for (int64_t h = 0; h < H; h++) {
        for (const Role& role : roles) {
          if (!role.out->data) continue;
          const float* src = proj + ((token * H + h) * a.parts + role.part) * Dh;
          float* dst = role.out->as<float>() + ((b * H + h) * N + n) * Dh;
          if (role.norm) {
            double ss = 0.0;
            for (int64_t d = 0; d < Dh; d++) ss += static_cast<double>(src[d]) * src[d];
            const double inv = 1.0 / std::sqrt(ss / static_cast<double>(Dh) + a.eps);
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
      }
    }
  });
}

}  // namespace sv::cpu
