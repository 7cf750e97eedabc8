// CUDA attention (native/attention.h).
//
// attention_rowwise_kernel is the generic path: any head dim up to 512, every mask variant, f32 or
// bf16/f16 storage. One warp owns one query row; each lane keeps D/32 elements of q and of the
// output accumulator in registers, and the warp walks the visible keys with an online softmax
// (running max and normaliser), so no N×N scores are ever stored. It is simple and exact, and it
// is the twin the faster tensor-core kernels are checked against.
#include <cfloat>

#include "../native/attention.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

struct AttentionParams {
  int64_t heads, kv_heads, q_len, kv_len_max, head_dim;
  float scale;
  bool causal, alibi;
};

__device__ __forceinline__ float alibi_slope_device(int64_t head, int64_t heads) {
  int64_t n = 1;
  while (n * 2 <= heads) n *= 2;
  if (head < n) return exp2f(-8.0f * static_cast<float>(head + 1) / static_cast<float>(n));
  return exp2f(-4.0f * static_cast<float>(2 * (head - n) + 1) / static_cast<float>(n));
}

template <typename T, int PerLane>
__global__ void attention_rowwise_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                         T* __restrict__ out, const int32_t* __restrict__ kv_len, AttentionParams p,
                                         int64_t rows) {
  const int lane = threadIdx.x & 31;
  const int64_t row = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;  // one warp per (b, h, i)
  if (row >= rows) return;
  const int64_t i = row % p.q_len, h = (row / p.q_len) % p.heads, b = row / (p.q_len * p.heads);
  const int64_t hk = h / (p.heads / p.kv_heads);
  const int64_t D = p.head_dim, offset = p.kv_len_max - p.q_len;
  int64_t last = p.kv_len_max;
  if (kv_len) last = min(last, static_cast<int64_t>(max(kv_len[b], 0)));
  if (p.causal) last = min(last, i + offset + 1);
  const float slope = p.alibi ? alibi_slope_device(h, p.heads) : 0.0f;

  float qr[PerLane], acc[PerLane];
  const T* qi = q + ((b * p.heads + h) * p.q_len + i) * D;
#pragma unroll
  for (int e = 0; e < PerLane; e++) {
    const int64_t d = e * 32 + lane;
    qr[e] = d < D ? to_f32(qi[d]) * p.scale : 0.0f;
    acc[e] = 0.0f;
  }
  const T* kb = k + (b * p.kv_heads + hk) * p.kv_len_max * D;
  const T* vb = v + (b * p.kv_heads + hk) * p.kv_len_max * D;
  float running_max = -FLT_MAX, normaliser = 0.0f;
  for (int64_t j = 0; j < last; j++) {
    const T* kj = kb + j * D;
    float dot = 0.0f;
#pragma unroll
    for (int e = 0; e < PerLane; e++) {
      const int64_t d = e * 32 + lane;
      if (d < D) dot += qr[e] * to_f32(kj[d]);
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    if (p.alibi) dot -= slope * sqrtf(static_cast<float>(i + offset - j));
    const float new_max = fmaxf(running_max, dot);
    const float correction = __expf(running_max - new_max);
    const float weight = __expf(dot - new_max);
    normaliser = normaliser * correction + weight;
    const T* vj = vb + j * D;
#pragma unroll
    for (int e = 0; e < PerLane; e++) {
      const int64_t d = e * 32 + lane;
      acc[e] = acc[e] * correction + (d < D ? weight * to_f32(vj[d]) : 0.0f);
    }
    running_max = new_max;
  }
  T* o = out + ((b * p.q_len + i) * p.heads + h) * D;
  const float inv = normaliser > 0.0f ? 1.0f / normaliser : 0.0f;
#pragma unroll
  for (int e = 0; e < PerLane; e++) {
    const int64_t d = e * 32 + lane;
    if (d < D) o[d] = from_f32<T>(acc[e] * inv);
  }
}

template <typename T, int PerLane>
void launch_rowwise(const AttentionArgs& a, const AttentionParams& p) {
  const int64_t rows = a.batch * a.heads * a.q_len;
  const int threads = 128;  // 4 rows per block
  const int64_t blocks = (rows * 32 + threads - 1) / threads;
  SV_CHECK(blocks <= 2147483647LL, "ERR_SHAPE", "attention: problem too large for one launch");
  attention_rowwise_kernel<T, PerLane><<<static_cast<unsigned>(blocks), threads, 0, stream_of(a.out)>>>(
      a.q.as<const T>(), a.k.as<const T>(), a.v.as<const T>(), a.out.as<T>(),
      a.kv_len.data ? a.kv_len.as<const int32_t>() : nullptr, p, rows);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void attention_rowwise(const AttentionArgs& a) {
  use_device(a.out.device);
  if (a.batch * a.heads * a.q_len == 0) return;
  SV_CHECK(a.head_dim <= 512, "ERR_UNSUPPORTED", "attention: head dim " + std::to_string(a.head_dim) + " exceeds 512");
  AttentionParams p{a.heads, a.kv_heads, a.q_len, a.kv_len_max, a.head_dim, a.scale, a.causal, a.alibi_sqrt};
  dispatch_float(a.out.dtype, "attention", [&](auto t) {
    using T = decltype(t);
    if (a.head_dim <= 32) {
      launch_rowwise<T, 1>(a, p);
    } else if (a.head_dim <= 64) {
      launch_rowwise<T, 2>(a, p);
    } else if (a.head_dim <= 128) {
      launch_rowwise<T, 4>(a, p);
    } else if (a.head_dim <= 256) {
      launch_rowwise<T, 8>(a, p);
    } else {
      launch_rowwise<T, 16>(a, p);
    }
  });
}

void attention(const AttentionArgs& a) { attention_rowwise(a); }

}  // namespace sv::cuda
