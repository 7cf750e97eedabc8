// CPU reference GEMM, f32: out[b] = alpha · a[b] · op(b[b]) + bias, then the optional GELU epilogue.
// Classic blocked design: for each KC-deep slice, op(B) is packed once into 16-column panels
// shared by all threads; threads then take (row block × column chunk) tiles, pack their rows of A
// into 6-row panels and run a 6×16 register-blocked micro-kernel (see micro_kernel_body).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../kernels.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {
namespace {

constexpr int64_t MR = 6;
constexpr int64_t NR = 16;
constexpr int64_t KC = 256;
constexpr int64_t MC = 96;   // rows of A per tile (multiple of MR)
constexpr int64_t NCT = 256; // columns per tile (multiple of NR)

typedef float v8f __attribute__((vector_size(32)));

// The matmul GELU epilogue: PyTorch's approximate='tanh' form, as UnaryOp::gelu_tanh.
inline float gelu_tanh(float x) { return 0.5f * x * (1.0f + std::tanh(0.7978845608028654f * (x + 0.044715f * x * x * x))); }

// acc[6×16] = Σ_p a[p][0..5] ⊗ b[p][0..15] over kc steps; then c (ldc) += or = acc.
// The body is compiled three times (AVX-512, AVX2+FMA, baseline) through per-function target
// attributes and picked once at run time, so one binary is fast on every x86-64 host.
__attribute__((always_inline)) inline void micro_kernel_body(int64_t kc, const float* __restrict a,
                                                             const float* __restrict b, float* __restrict c,
                                                             int64_t ldc, bool accumulate) {
  v8f acc[MR][2];
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = v8f{0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t p = 0; p < kc; p++) {
    v8f b0, b1;
    std::memcpy(&b0, b + p * NR, sizeof(v8f));
    std::memcpy(&b1, b + p * NR + 8, sizeof(v8f));
    const float* ap = a + p * MR;
    for (int i = 0; i < MR; i++) {
      const float ai = ap[i];
      acc[i][0] += ai * b0;
      acc[i][1] += ai * b1;
    }
  }
  for (int i = 0; i < MR; i++) {
    float* row = c + i * ldc;
    if (accumulate) {
      v8f c0, c1;
      std::memcpy(&c0, row, sizeof(v8f));
      std::memcpy(&c1, row + 8, sizeof(v8f));
      acc[i][0] += c0;
      acc[i][1] += c1;
    }
    std::memcpy(row, &acc[i][0], sizeof(v8f));
    std::memcpy(row + 8, &acc[i][1], sizeof(v8f));
  }
}

using MicroKernel = void (*)(int64_t, const float*, const float*, float*, int64_t, bool);

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512vl,fma"))) void micro_kernel_avx512(int64_t kc, const float* a, const float* b,
                                                                          float* c, int64_t ldc, bool accumulate) {
  micro_kernel_body(kc, a, b, c, ldc, accumulate);
}
__attribute__((target("avx2,fma"))) void micro_kernel_avx2(int64_t kc, const float* a, const float* b, float* c,
                                                           int64_t ldc, bool accumulate) {
  micro_kernel_body(kc, a, b, c, ldc, accumulate);
}
#endif
void micro_kernel_generic(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, bool accumulate) {
  micro_kernel_body(kc, a, b, c, ldc, accumulate);
}

MicroKernel select_micro_kernel() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return micro_kernel_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return micro_kernel_avx2;
#endif
  return micro_kernel_generic;
}

const MicroKernel micro_kernel = select_micro_kernel();

// Packs op(B)[p0..p0+kc) × [0..n) into panels of NR columns: panel j holds kc rows of 16 floats.
void pack_b(const float* b, bool trans_b, int64_t k, int64_t n, int64_t p0, int64_t kc, float* packed) {
  const int64_t panels = (n + NR - 1) / NR;
  parallel_for(panels, 4, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; j++) {
      float* dst = packed + j * kc * NR;
      const int64_t c0 = j * NR, cols = std::min(NR, n - c0);
      for (int64_t p = 0; p < kc; p++) {
        float* d = dst + p * NR;
        if (trans_b) {  // b is [n, k]
          for (int64_t c = 0; c < cols; c++) d[c] = b[(c0 + c) * k + p0 + p];
        } else {  // b is [k, n]
          std::memcpy(d, b + (p0 + p) * n + c0, static_cast<size_t>(cols) * sizeof(float));
        }
        for (int64_t c = cols; c < NR; c++) d[c] = 0.0f;
      }
    }
  });
}

// Packs rows [r0, r0+rows) of A (row-major [m, k]) × [p0, p0+kc) into MR-row panels.
void pack_a(const float* a, int64_t k, int64_t r0, int64_t rows, int64_t p0, int64_t kc, float* packed) {
  for (int64_t i0 = 0; i0 < rows; i0 += MR) {
    float* dst = packed + (i0 / MR) * kc * MR;
    const int64_t mr = std::min(MR, rows - i0);
    for (int64_t p = 0; p < kc; p++) {
      for (int64_t i = 0; i < mr; i++) dst[p * MR + i] = a[(r0 + i0 + i) * k + p0 + p];
      for (int64_t i = mr; i < MR; i++) dst[p * MR + i] = 0.0f;
    }
  }
}

void gemm_one(const float* a, const float* b, float* c, const MatmulArgs& args) {
  const int64_t m = args.m, n = args.n, k = args.k;
  if (k == 0) {
    for (int64_t i = 0; i < m * n; i++) c[i] = 0.0f;
  }
  const int64_t panels = (n + NR - 1) / NR;
  std::vector<float> packed_b(static_cast<size_t>(std::min(KC, std::max<int64_t>(k, 1)) * panels * NR));
  const int64_t row_blocks = (m + MC - 1) / MC, col_chunks = (n + NCT - 1) / NCT;
  for (int64_t p0 = 0; p0 < k; p0 += KC) {
    const int64_t kc = std::min(KC, k - p0);
    const bool accumulate = p0 > 0;
    pack_b(b, args.trans_b, k, n, p0, kc, packed_b.data());
    parallel_for(row_blocks * col_chunks, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> packed_a(static_cast<size_t>(MC * kc));
      float edge[MR * NR];
      for (int64_t tile = begin; tile < end; tile++) {
        const int64_t rb = tile / col_chunks, cc = tile % col_chunks;
        const int64_t r0 = rb * MC, rows = std::min(MC, m - r0);
        const int64_t c0 = cc * NCT, c1 = std::min(n, c0 + NCT);
        pack_a(a, k, r0, rows, p0, kc, packed_a.data());
        for (int64_t i0 = 0; i0 < rows; i0 += MR) {
          const int64_t mr = std::min(MR, rows - i0);
          const float* ap = packed_a.data() + (i0 / MR) * kc * MR;
          for (int64_t j0 = c0; j0 < c1; j0 += NR) {
            const int64_t nr = std::min(NR, n - j0);
            const float* bp = packed_b.data() + (j0 / NR) * kc * NR;
            float* cp = c + (r0 + i0) * n + j0;
            if (mr == MR && nr == NR) {
              micro_kernel(kc, ap, bp, cp, n, accumulate);
            } else {  // ragged edge: compute into a scratch tile, copy the valid part
              for (int64_t i = 0; i < mr; i++)
                for (int64_t j = 0; j < nr; j++) edge[i * NR + j] = accumulate ? cp[i * n + j] : 0.0f;
              micro_kernel(kc, ap, bp, edge, NR, true);
              for (int64_t i = 0; i < mr; i++)
                for (int64_t j = 0; j < nr; j++) cp[i * n + j] = edge[i * NR + j];
            }
          }
        }
      }
    });
  }
  const bool gelu = args.epilogue == MatmulEpilogue::gelu_tanh;
  if (args.alpha != 1.0f || args.bias.data != nullptr || gelu) {
    const float alpha = args.alpha;
    const float* bias = args.bias.data ? args.bias.as<float>() : nullptr;
    parallel_for(m, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, n)), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        float* row = c + i * n;
        for (int64_t j = 0; j < n; j++) {
          const float y = alpha * row[j] + (bias ? bias[j] : 0.0f);
          row[j] = gelu ? gelu_tanh(y) : y;
        }
      }
    });
  }
}

}  // namespace

void matmul(const ExecContext& ctx, const MatmulArgs& args) {
  require_f32(args.out, "matmul", "out");
  require_f32(args.a, "matmul", "a");
  require_f32(args.b, "matmul", "b");
  if (args.bias.data) require_f32(args.bias, "matmul", "bias");
  for (int64_t batch = 0; batch < args.batch; batch++) {
    gemm_one(args.a.as<float>() + batch * args.a_batch_stride, args.b.as<float>() + batch * args.b_batch_stride,
             args.out.as<float>() + batch * args.m * args.n, args);
  }
}

}  // namespace sv::cpu
