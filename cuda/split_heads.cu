// CUDA twin of native/cpu/split_heads.cc. One block per token (b, n): its warps take the heads in turn,
// and a warp handles every part of its head, one head_dim row at a time, lane l holding elements
// l, l+32, ... (coalesced loads and stores). Everything that depends on the token only (the batch
// index, the grid position, each lane's RoPE cos/sin and partner) and the norm weights are worked
// out once per block, so the per-row work is the loads, the warp-reduced sum of squares, the
// rotation (partners exchanged through a per-warp row of shared memory) and the stores: the
// kernel stays memory-bound. Every input element is read once, every output element written once.
#include <string>

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

// RoPE factors of head element d at grid position (position0, position1, position2), so that the
// rotation reads out[d] = x[d]·cos + x[partner]·sin (the rotate-half sign folded into sin);
// cos 1, sin 0 where there is no RoPE or d is past the head.
__device__ __forceinline__ void rope_factors(const RopeParams& rope, int d, int head_dim, int64_t position0,
                                             int64_t position1, int64_t position2, float& cos_d, float& sin_d,
                                             int& partner) {
  cos_d = 1.0f, sin_d = 0.0f, partner = 0;
  if (rope.cos == nullptr || d >= head_dim) return;
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
  cos_d = rope.cos[entry];
  sin_d = first ? -rope.sin[entry] : rope.sin[entry];
  partner = first ? d + half : d - half;
}

// What a lane needs for every head of a token, worked out once per block: the norm weights of its
// elements (1 where the norm is absent or past the head) and their RoPE factors (rope_factors).
template <int kPerLane>
struct LaneConstants {
  float cos_d[kPerLane], sin_d[kPerLane], q_w[kPerLane], k_w[kPerLane];
  int partner[kPerLane];
};

// The constants of lane `lane` for token n of the grid (lane l holds elements l, l+32, ...).
template <typename T, int kPerLane>
__device__ __forceinline__ LaneConstants<kPerLane> lane_constants(const T* q_norm, const T* k_norm,
                                                                  const RopeParams& rope, int lane, int head_dim,
                                                                  int64_t n) {
  LaneConstants<kPerLane> c;
  const int64_t plane = rope.grid1 * rope.grid2;
  const int64_t position0 = n / plane, position1 = (n / rope.grid2) % rope.grid1, position2 = n % rope.grid2;
#pragma unroll
  for (int i = 0; i < kPerLane; i++) {
    const int d = lane + 32 * i;
    c.q_w[i] = q_norm != nullptr && d < head_dim ? to_f32(q_norm[d]) : 1.0f;
    c.k_w[i] = k_norm != nullptr && d < head_dim ? to_f32(k_norm[d]) : 1.0f;
    rope_factors(rope, d, head_dim, position0, position1, position2, c.cos_d[i], c.sin_d[i], c.partner[i]);
  }
  return c;
}

// 1 / sqrt(mean(x²) + eps) of a lane-held row of head_dim elements (zeros past the head), summed
// over the warp: RMSNorm's statistic.
template <int kPerLane>
__device__ __forceinline__ float rms_rstd(const float (&x)[kPerLane], int head_dim, float eps) {
  float sum_sq = 0.0f;
#pragma unroll
  for (int i = 0; i < kPerLane; i++) sum_sq += x[i] * x[i];
  return rsqrtf(warp_sum(sum_sq) / static_cast<float>(head_dim) + eps);
}

// Rotates a lane-held row by RoPE, out[d] = x[d]·cos + x[partner]·sin, or with kTranspose by its
// transpose (the rotation by -angle), out[d] = x[d]·cos - x[partner]·sin; partners are exchanged
// through the warp's row of shared memory, `staged`.
template <bool kTranspose, int kPerLane>
__device__ __forceinline__ void rotate_row(float (&row)[kPerLane], float* staged, const LaneConstants<kPerLane>& c,
                                           int lane, int head_dim) {
#pragma unroll
  for (int i = 0; i < kPerLane; i++) {
    const int d = lane + 32 * i;
    if (d < head_dim) staged[d] = row[i];
  }
  __syncwarp();
#pragma unroll
  for (int i = 0; i < kPerLane; i++) {
    if (lane + 32 * i >= head_dim) continue;
    const float partner = kTranspose ? -staged[c.partner[i]] : staged[c.partner[i]];
    row[i] = fmaf(row[i], c.cos_d[i], partner * c.sin_d[i]);
  }
  __syncwarp();  // the next row overwrites the staged row
}

// A row of head_dim elements from src into the lane's registers (zeros past the head), and back.
template <typename T, int kPerLane>
__device__ __forceinline__ void load_row(const T* src, float (&row)[kPerLane], int lane, int head_dim) {
#pragma unroll
  for (int i = 0; i < kPerLane; i++) {
    const int d = lane + 32 * i;
    row[i] = d < head_dim ? to_f32(src[d]) : 0.0f;
  }
}
template <typename T, int kPerLane>
__device__ __forceinline__ void store_row(T* dst, const float (&row)[kPerLane], int lane, int head_dim) {
#pragma unroll
  for (int i = 0; i < kPerLane; i++) {
    const int d = lane + 32 * i;
    if (d < head_dim) dst[d] = from_f32<T>(row[i]);
  }
}

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
  const LaneConstants<kPerLane> c = lane_constants<T, kPerLane>(q_norm, k_norm, rope, lane, head_dim, n);

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
      float(&row)[kPerLane] = x[part];
      if (normed) {
        const float inv = rms_rstd(row, head_dim, eps);
#pragma unroll
        for (int i = 0; i < kPerLane; i++) {
          // Round the normalised value to T before the weight, and the product again (official RMSNorm).
          const float normalised = to_f32(from_f32<T>(row[i] * inv));
          row[i] = to_f32(from_f32<T>(normalised * (is_q ? c.q_w[i] : c.k_w[i])));
        }
      }
      if (rotate) rotate_row<false>(row, staged[warp], c, lane, head_dim);
      store_row(dst, row, lane, head_dim);
    }
  }
}

// The backward (split_heads.h): the same block and warp shape. A warp walks its head's parts in
// proj's order and writes each dproj row once: zeros where the part has no gradient; otherwise the
// gradient row, rotated back by -angle (q, k with RoPE), then through the RMSNorm backward, whose
// statistics come from the forward's input row of proj.
template <typename T, int kPerLane>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    split_heads_backward_kernel(const T* __restrict__ proj, T* __restrict__ dproj, const T* __restrict__ dq,
                                const T* __restrict__ dk, const T* __restrict__ dv, const T* __restrict__ q_norm,
                                const T* __restrict__ k_norm, RopeParams rope, Parts parts_of, int64_t tokens,
                                int32_t heads, int32_t parts, int32_t head_dim, float eps) {
  SV_SHARED(float, staged, [kWarpsPerBlock][kSplitHeadsMaxHeadDim]);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t token = blockIdx.x;
  const int64_t b = token / tokens, n = token % tokens;
  const LaneConstants<kPerLane> c = lane_constants<T, kPerLane>(q_norm, k_norm, rope, lane, head_dim, n);

  const int64_t token_offset = token * static_cast<int64_t>(heads) * parts * head_dim;
  for (int h = warp; h < heads; h += kWarpsPerBlock) {
    const int64_t head_offset = token_offset + static_cast<int64_t>(h) * parts * head_dim;
    const int64_t grad_row = ((b * heads + h) * tokens + n) * head_dim;
    for (int part = 0; part < parts; part++) {
      // Which part this is (uniform across the warp).
      const bool is_q = part == parts_of.q, is_k = part == parts_of.k, is_v = part == parts_of.v;
      const T* grad = is_q ? dq : is_k ? dk : is_v ? dv : nullptr;
      T* dst = dproj + head_offset + static_cast<int64_t>(part) * head_dim;
      float row[kPerLane];
      if (grad == nullptr) {
        for (float& r : row) r = 0.0f;
        store_row(dst, row, lane, head_dim);
        continue;
      }
      load_row(grad + grad_row, row, lane, head_dim);
      // The transpose of out[d] = x[d]·cos + x[partner]·sin: x[partner] receives dy[d]·sin[d], i.e.
      // dx[d] = dy[d]·cos[d] + dy[partner]·sin[partner] = dy[d]·cos[d] - dy[partner]·sin[d].
      if (rope.cos != nullptr && !is_v) rotate_row<true>(row, staged[warp], c, lane, head_dim);
      const bool normed = is_q ? q_norm != nullptr : is_k && k_norm != nullptr;
      if (normed) {
        // dx = rstd · (g - n · mean(g · n)), n = x · rstd, g = d · w.
        float x[kPerLane];
        load_row(proj + head_offset + static_cast<int64_t>(part) * head_dim, x, lane, head_dim);
        const float rstd = rms_rstd(x, head_dim, eps);
        float sum_gn = 0.0f;
#pragma unroll
        for (int i = 0; i < kPerLane; i++) {
          x[i] *= rstd;  // n
          row[i] *= is_q ? c.q_w[i] : c.k_w[i];  // g
          sum_gn += row[i] * x[i];
        }
        const float mean_gn = warp_sum(sum_gn) / static_cast<float>(head_dim);
#pragma unroll
        for (int i = 0; i < kPerLane; i++) row[i] = rstd * (row[i] - x[i] * mean_gn);
      }
      store_row(dst, row, lane, head_dim);
    }
  }
}

// The kernels' view of the RoPE table (none where the table is absent).
RopeParams rope_params(const Rope3dTable& table) {
  RopeParams rope;
  if (table.table.data) {
    rope.cos = table.table.as<const float>();
    rope.sin = rope.cos + table.table.size(-1);
    rope.grid1 = table.grid[1];
    rope.grid2 = table.grid[2];
    rope.split0 = static_cast<int32_t>(table.split[0]);
    rope.split1 = static_cast<int32_t>(table.split[1]);
    rope.offset1 = table.grid[0] * (table.split[0] / 2);
    rope.offset2 = rope.offset1 + table.grid[1] * (table.split[1] / 2);
  }
  return rope;
}

// The launch's blocks, one per token (0: nothing to do), checked against the kernels' range.
unsigned token_blocks(const std::string& op, int64_t batch, int64_t tokens, int64_t heads, int64_t parts,
                      int64_t head_dim) {
  const int64_t blocks = batch * tokens;
  if (blocks == 0 || heads == 0 || head_dim == 0) return 0;
  SV_CHECK(blocks <= 2147483647LL, "ERR_SHAPE", op + ": more than 2^31 - 1 tokens in one launch");
  SV_CHECK(head_dim <= kSplitHeadsMaxHeadDim && heads <= 65536 && parts >= 1 && parts <= 3, "ERR_SHAPE",
           op + ": head_dim/heads/parts out of the kernel's range");
  return static_cast<unsigned>(blocks);
}

}  // namespace

void split_heads(const ExecContext& ctx, const SplitHeadsArgs& a) {
  use_device(ctx.device);
  const unsigned blocks = token_blocks("split_heads", a.batch, a.tokens, a.heads, a.parts, a.head_dim);
  if (blocks == 0) return;
  const RopeParams rope = rope_params(a.rope);
  const Parts parts_of{a.q.data ? a.q_part : -1, a.k.data ? a.k_part : -1, a.v.data ? a.v_part : -1};
  dispatch_float(a.proj.dtype, "split_heads", [&](auto t) {
    using T = decltype(t);
    auto kernel = a.head_dim <= 128 ? split_heads_kernel<T, 4> : split_heads_kernel<T, 8>;
    launch(SV_HERE, kernel, blocks, kWarpsPerBlock * 32, 0, work_stream(ctx),
           a.proj.as<const T>(), ptr_or_null<T>(a.q), ptr_or_null<T>(a.k), ptr_or_null<T>(a.v),
           ptr_or_null<const T>(a.q_norm), ptr_or_null<const T>(a.k_norm), rope, parts_of, a.tokens,
           static_cast<int32_t>(a.heads), static_cast<int32_t>(a.parts), static_cast<int32_t>(a.head_dim), a.eps);
  });
}

void split_heads_backward(const ExecContext& ctx, const SplitHeadsBackwardArgs& a) {
  use_device(ctx.device);
  const unsigned blocks = token_blocks("split_heads_backward", a.batch, a.tokens, a.heads, a.parts, a.head_dim);
  if (blocks == 0) return;
  const RopeParams rope = rope_params(a.rope);
  const Parts parts_of{a.q_part, a.k_part, a.v_part};
  dispatch_float(a.proj.dtype, "split_heads_backward", [&](auto t) {
    using T = decltype(t);
    auto kernel = a.head_dim <= 128 ? split_heads_backward_kernel<T, 4> : split_heads_backward_kernel<T, 8>;
    launch(SV_HERE, kernel, blocks, kWarpsPerBlock * 32, 0, work_stream(ctx),
           a.proj.as<const T>(), a.dproj.as<T>(), ptr_or_null<const T>(a.dq), ptr_or_null<const T>(a.dk),
           ptr_or_null<const T>(a.dv), ptr_or_null<const T>(a.q_norm), ptr_or_null<const T>(a.k_norm), rope, parts_of,
           a.tokens, static_cast<int32_t>(a.heads), static_cast<int32_t>(a.parts), static_cast<int32_t>(a.head_dim),
           a.eps);
  });
}

}  // namespace sv::cuda
