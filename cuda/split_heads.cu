// CUDA twin of native/cpu/split_heads.cc. One block per token (b, n): its warps take the heads in turn,
// and a warp handles every part of its head, one head_dim row at a time, lane l holding elements
// l, l+32, ... (coalesced loads and stores). Everything that depends on the token only (the batch
// index, the grid position, each lane's RoPE cos/sin and partner) and the norm weights are worked
// out once per block, so the per-row work is the loads, the warp-reduced sum of squares, the
// rotation (partners exchanged through a per-warp row of shared memory) and the stores: the
// kernel stays memory-bound. Every input element is read once, every output element written once.
#include "../native/split_heads.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;

struct RopeParams {
  const float* cos = nullptr;  // nullptr: no RoPE
  const float* sin = nullptr;
  int64_t grid1 = 1, grid2 = 1;      // rows and cols of the token grid (frames are implied)
  int32_t split0 = 0, split1 = 0;    // slice widths of axes 0 and 1 (axis 2 takes the rest)
  int64_t offset1 = 0, offset2 = 0;  // first table entry of axes 1 and 2
};

struct Parts {
  int32_t q = -1, k = -1, v = -1;
};

// kPerLane: the elements each lane holds, 4 (head_dim <= 128) or 8 (head_dim <= 256).
template <typename T, int kPerLane>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    split_heads_kernel(const T* __restrict__ proj, T* __restrict__ q, T* __restrict__ k, T* __restrict__ v,
                       const T* __restrict__ q_norm, const T* __restrict__ k_norm, RopeParams rope, Parts parts_of,
                       int64_t tokens, int32_t heads, int32_t parts, int32_t head_dim, float eps) {
  SV_SHARED(float, staged, [kWarpsPerBlock][kSplitHeadsMaxHeadDim]);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t token = blockIdx.x;  // b·tokens + n: proj holds this token's heads·parts rows from token·width
  const int64_t b = token / tokens, n = token % tokens;

  // This lane's RoPE factors: out[d] = x[d]·cos[d] + x[partner[d]]·sin[d], the rotate-half sign
  // folded into sin. The same for every head and for q and k.
  float cos_d[kPerLane], sin_d[kPerLane], q_w[kPerLane], k_w[kPerLane];
  int partner[kPerLane];
  const int64_t plane = rope.grid1 * rope.grid2;
  const int64_t position0 = n / plane, position1 = (n / rope.grid2) % rope.grid1, position2 = n % rope.grid2;
#pragma unroll
  for (int i = 0; i < kPerLane; i++) {
    const int d = lane + 32 * i;
    cos_d[i] = 1.0f, sin_d[i] = 0.0f, partner[i] = 0;
    q_w[i] = q_norm != nullptr && d < head_dim ? to_f32(q_norm[d]) : 1.0f;
    k_w[i] = k_norm != nullptr && d < head_dim ? to_f32(k_norm[d]) : 1.0f;
    if (rope.cos == nullptr || d >= head_dim) continue;
    // The slice d is in: its start, width, first table entry and position.
    int start = 0, width = rope.split0;
    int64_t offset = 0, position = position0;
    if (d >= rope.split0 + rope.split1) {
      start = rope.split0 + rope.split1, width = head_dim - start, offset = rope.offset2, position = position2;
    } else if (d >= rope.split0) {
      start = rope.split0, width = rope.split1, offset = rope.offset1, position = position1;
    }
    const int half = width / 2, within = d - start;
    const bool first = within < half;
    const int64_t entry = offset + position * half + (first ? within : within - half);
    cos_d[i] = rope.cos[entry];
    sin_d[i] = first ? -rope.sin[entry] : rope.sin[entry];
    partner[i] = first ? d + half : d - half;
  }

  const T* token_rows = proj + token * static_cast<int64_t>(heads) * parts * head_dim;
  for (int h = warp; h < heads; h += kWarpsPerBlock) {
    // Load every part of the head first: up to 3·kPerLane independent loads in flight per lane.
    const T* head_rows = token_rows + static_cast<int64_t>(h) * parts * head_dim;
    float x[3][kPerLane];
#pragma unroll
    for (int part = 0; part < 3; part++) {
#pragma unroll
      for (int i = 0; i < kPerLane; i++) {
        const int d = lane + 32 * i;
        x[part][i] = part < parts && d < head_dim ? to_f32(head_rows[part * head_dim + d]) : 0.0f;
      }
    }
#pragma unroll
    for (int part = 0; part < 3; part++) {
      // Which output this part is (uniform across the warp); parts nobody asked for are skipped.
      const bool is_q = part == parts_of.q, is_k = part == parts_of.k, is_v = part == parts_of.v;
      T* out = is_q ? q : is_k ? k : is_v ? v : nullptr;
      if (part >= parts || out == nullptr) continue;
      const bool normed = is_q ? q_norm != nullptr : is_k && k_norm != nullptr;
      const bool rotate = rope.cos != nullptr && !is_v;
      T* dst = out + ((b * heads + h) * tokens + n) * head_dim;
      float* row = x[part];
      if (normed) {
        float sum_sq = 0.0f;
#pragma unroll
        for (int i = 0; i < kPerLane; i++) sum_sq += row[i] * row[i];
        const float inv = rsqrtf(warp_sum(sum_sq) / static_cast<float>(head_dim) + eps);
#pragma unroll
        for (int i = 0; i < kPerLane; i++) {
          // Round the normalised value to T before the weight, and the product again (official RMSNorm).
          const float normalised = to_f32(from_f32<T>(row[i] * inv));
          row[i] = to_f32(from_f32<T>(normalised * (is_q ? q_w[i] : k_w[i])));
        }
      }
      if (rotate) {
#pragma unroll
        for (int i = 0; i < kPerLane; i++) {
          const int d = lane + 32 * i;
          if (d < head_dim) staged[warp][d] = row[i];
        }
        __syncwarp();
#pragma unroll
        for (int i = 0; i < kPerLane; i++) {
          const int d = lane + 32 * i;
          if (d < head_dim) row[i] = fmaf(row[i], cos_d[i], staged[warp][partner[i]] * sin_d[i]);
        }
        __syncwarp();  // the next row overwrites the staged row
      }
#pragma unroll
      for (int i = 0; i < kPerLane; i++) {
        const int d = lane + 32 * i;
        if (d < head_dim) dst[d] = from_f32<T>(row[i]);
      }
    }
  }
}

}  // namespace

void split_heads(const ExecContext& ctx, const SplitHeadsArgs& a) {
  use_device(ctx.device);
  const int64_t blocks = a.batch * a.tokens;
  if (blocks == 0 || a.heads == 0 || a.head_dim == 0) return;
  SV_CHECK(blocks <= 2147483647LL, "ERR_SHAPE", "split_heads: more than 2^31 - 1 tokens in one launch");
  SV_CHECK(a.head_dim <= kSplitHeadsMaxHeadDim && a.heads <= 65536 && a.parts >= 1 && a.parts <= 3, "ERR_SHAPE",
           "split_heads: head_dim/heads/parts out of the kernel's range");
  RopeParams rope;
  if (a.rope.table.data) {
    rope.cos = a.rope.table.as<const float>();
    rope.sin = rope.cos + a.rope.table.size(-1);
    rope.grid1 = a.rope.grid[1];
    rope.grid2 = a.rope.grid[2];
    rope.split0 = static_cast<int32_t>(a.rope.split[0]);
    rope.split1 = static_cast<int32_t>(a.rope.split[1]);
    rope.offset1 = a.rope.grid[0] * (a.rope.split[0] / 2);
    rope.offset2 = rope.offset1 + a.rope.grid[1] * (a.rope.split[1] / 2);
  }
  const Parts parts_of{a.q.data ? a.q_part : -1, a.k.data ? a.k_part : -1, a.v.data ? a.v_part : -1};
  dispatch_float(a.proj.dtype, "split_heads", [&](auto t) {
    using T = decltype(t);
    auto kernel = a.head_dim <= 128 ? split_heads_kernel<T, 4> : split_heads_kernel<T, 8>;
    launch(SV_HERE, kernel, static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, work_stream(ctx),
           a.proj.as<const T>(), ptr_or_null<T>(a.q), ptr_or_null<T>(a.k), ptr_or_null<T>(a.v),
           ptr_or_null<const T>(a.q_norm), ptr_or_null<const T>(a.k_norm), rope, parts_of, a.tokens,
           static_cast<int32_t>(a.heads), static_cast<int32_t>(a.parts), static_cast<int32_t>(a.head_dim), a.eps);
  });
}

}  // namespace sv::cuda
