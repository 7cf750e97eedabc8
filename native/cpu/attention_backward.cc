// CPU reference of the attention backward (native/attention.h): per query row the softmax is
// recomputed exactly as cpu::attention computes it, then
//   Δ_i = dO_i·O_i,  dP_ij = dO_i·v_j,  dS_ij = P_ij (dP_ij − Δ_i),
//   dq_i = scale Σ_j dS_ij k_j,  dk_j = scale Σ_i dS_ij q_i,  dv_j = Σ_i P_ij dO_i.
// f32 data, double accumulators. Work is split over (batch, head): dk and dv sum over every query
// of their head, so one work item owns a head's rows of all three outputs and no sum is shared.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../attention.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

void attention_backward(const ExecContext& ctx, const AttentionBackwardArgs& a) {
  (void)ctx;
  const char* op = "attentionBackward";
  require_f32(a.q, op, "q");
  require_f32(a.k, op, "k");
  require_f32(a.v, op, "v");
  require_f32(a.out, op, "out");
  require_f32(a.d_out, op, "dOut");
  require_f32(a.dq, op, "dq");
  require_f32(a.dk, op, "dk");
  require_f32(a.dv, op, "dv");
  const float* q = a.q.as<float>();
  const float* k = a.k.as<float>();
  const float* v = a.v.as<float>();
  const float* out = a.out.as<float>();
  const float* d_out = a.d_out.as<float>();
  float* dq = a.dq.as<float>();
  float* dk = a.dk.as<float>();
  float* dv = a.dv.as<float>();
  const int32_t* kv_len = a.kv_len.data ? a.kv_len.as<int32_t>() : nullptr;
  const int64_t D = a.head_dim, Nq = a.q_len, Nk = a.kv_len_max, H = a.heads;
  parallel_for(a.batch * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scores(static_cast<size_t>(Nk));
    std::vector<double> p(static_cast<size_t>(Nk));
    std::vector<double> dq_acc(static_cast<size_t>(D));
    std::vector<double> dk_acc, dv_acc;
    for (int64_t item = begin; item < end; item++) {
      const int64_t b = item / H, h = item % H;
      const int64_t visible = kv_len ? std::min<int64_t>(std::max<int32_t>(kv_len[b], 0), Nk) : Nk;
      const float* qb = q + item * Nq * D;
      const float* kb = k + item * Nk * D;
      const float* vb = v + item * Nk * D;
      dk_acc.assign(static_cast<size_t>(visible * D), 0.0);
      dv_acc.assign(static_cast<size_t>(visible * D), 0.0);
      for (int64_t i = 0; i < Nq; i++) {
        const float* qi = qb + i * D;
        const float* oi = out + ((b * Nq + i) * H + h) * D;
        const float* doi = d_out + ((b * Nq + i) * H + h) * D;
        // The forward's softmax, recomputed (same f32 scores, double normaliser).
        float max = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < visible; j++) {
          float dot = 0.0f;
          for (int64_t d = 0; d < D; d++) dot += qi[d] * kb[j * D + d];
          scores[j] = dot * a.scale;
          max = std::fmax(max, scores[j]);
        }
        double total = 0.0;
        for (int64_t j = 0; j < visible; j++) {
          p[j] = std::exp(static_cast<double>(scores[j] - max));
          total += p[j];
        }
        double delta = 0.0;
        for (int64_t d = 0; d < D; d++) delta += static_cast<double>(doi[d]) * oi[d];
        std::fill(dq_acc.begin(), dq_acc.end(), 0.0);
        for (int64_t j = 0; j < visible; j++) {
          const double pij = p[j] / total;
          const float* vj = vb + j * D;
          double dp = 0.0;
          for (int64_t d = 0; d < D; d++) dp += static_cast<double>(doi[d]) * vj[d];
          const double ds = pij * (dp - delta);
          const float* kj = kb + j * D;
          for (int64_t d = 0; d < D; d++) {
            dq_acc[d] += ds * kj[d];
            dk_acc[j * D + d] += ds * qi[d];
            dv_acc[j * D + d] += pij * doi[d];
          }
        }
        float* dqi = dq + (item * Nq + i) * D;
        for (int64_t d = 0; d < D; d++) dqi[d] = static_cast<float>(a.scale * dq_acc[d]);
      }
      float* dkb = dk + item * Nk * D;
      float* dvb = dv + item * Nk * D;
      for (int64_t e = 0; e < visible * D; e++) {
        dkb[e] = static_cast<float>(a.scale * dk_acc[e]);
        dvb[e] = static_cast<float>(dv_acc[e]);
      }
      // Masked keys never reached the output: their gradients are zero.
      std::fill(dkb + visible * D, dkb + Nk * D, 0.0f);
      std::fill(dvb + visible * D, dvb + Nk * D, 0.0f);
    }
  });
}

}  // namespace sv::cpu
