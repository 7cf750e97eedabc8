// CPU reference attention (native/attention.h): exact softmax per query row, f32 data, double
// accumulation of the normaliser. Work is split over (batch, head, block of queries).
#include <cmath>
#include <limits>
#include <vector>

#include "../attention.h"
#include "common.h"
#include "parallel.h"

namespace sv {

float alibi_slope(int64_t head, int64_t heads) {
  int64_t n = 1;
  while (n * 2 <= heads) n *= 2;
  if (head < n) return static_cast<float>(std::pow(2.0, -8.0 * static_cast<double>(head + 1) / static_cast<double>(n)));
  const int64_t k = head - n;
  return static_cast<float>(std::pow(2.0, -4.0 * static_cast<double>(2 * k + 1) / static_cast<double>(n)));
}

namespace cpu {

void attention(const ExecContext& ctx, const AttentionArgs& a) {
  require_f32(a.out, "attention", "out");
  require_f32(a.q, "attention", "q");
  require_f32(a.k, "attention", "k");
  require_f32(a.v, "attention", "v");
  const float* q = a.q.as<float>();
  const float* k = a.k.as<float>();
  const float* v = a.v.as<float>();
  float* out = a.out.as<float>();
  const int32_t* kv_len = a.kv_len.data ? a.kv_len.as<int32_t>() : nullptr;
  const int64_t D = a.head_dim, Nq = a.q_len, Nk = a.kv_len_max, H = a.heads;
  const int64_t group = a.heads / a.kv_heads;
  const int64_t offset = Nk - Nq;
  constexpr int64_t kRowBlock = 16;
  const int64_t row_blocks = (Nq + kRowBlock - 1) / kRowBlock;
  parallel_for(a.batch * H * row_blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(Nk));
    std::vector<double> acc(static_cast<size_t>(D));
    for (int64_t item = begin; item < end; item++) {
      const int64_t b = item / (H * row_blocks), h = (item / row_blocks) % H, rb = item % row_blocks;
      const int64_t hk = h / group;
      const float slope = a.alibi_sqrt ? alibi_slope(h, H) : 0.0f;
      int64_t visible = kv_len ? std::min<int64_t>(std::max<int32_t>(kv_len[b], 0), Nk) : Nk;
      const float* kb = k + (b * a.kv_heads + hk) * Nk * D;
      const float* vb = v + (b * a.kv_heads + hk) * Nk * D;
      for (int64_t i = rb * kRowBlock; i < std::min(Nq, (rb + 1) * kRowBlock); i++) {
        const float* qi = q + ((b * H + h) * Nq + i) * D;
        int64_t last = visible;  // exclusive
        if (a.causal) last = std::min(last, i + offset + 1);
        float max = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < last; j++) {
          const float* kj = kb + j * D;
          float dot = 0.0f;
          for (int64_t d = 0; d < D; d++) dot += qi[d] * kj[d];
          float s = dot * a.scale;
          if (a.alibi_sqrt) s -= slope * std::sqrt(static_cast<float>(i + offset - j));
          scores[j] = s;
          max = std::fmax(max, s);
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        double total = 0.0;
        for (int64_t j = 0; j < last; j++) {
          const double p = std::exp(static_cast<double>(scores[j] - max));
          total += p;
          const float* vj = vb + j * D;
          for (int64_t d = 0; d < D; d++) acc[d] += p * vj[d];
        }
        float* o = out + ((b * Nq + i) * H + h) * D;
        for (int64_t d = 0; d < D; d++) o[d] = total > 0.0 ? static_cast<float>(acc[d] / total) : 0.0f;
      }
    }
  });
}

}  // namespace cpu
}  // namespace sv
