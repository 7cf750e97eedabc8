// CUDA twin of native/cpu/rope.cc. One warp per (token, head, part) row of head_dim elements:
// lane l holds elements l, l+32, ... in registers (coalesced loads and stores of the row), the
// sum of squares is a warp reduction, and the rotate-half partners are exchanged through a
// per-warp row in shared memory. Memory-bound: every input element is read once, every output
// element written once, and the RoPE tables (a few KiB) stay in L1/L2.
#include "../native/rope.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int kMaxPerLane = static_cast<int>(kSplitHeadsMaxHeadDim / 32);

struct RopeParams {
  const float* cos = nullptr;  // nullptr: no RoPE
  const float* sin = nullptr;
  int64_t grid1 = 1, grid2 = 1;         // rows and cols of the token grid (frames are implied)
  int32_t split0 = 0, split1 = 0;       // slice widths of axes 0 and 1 (axis 2 takes the rest)
  int64_t offset1 = 0, offset2 = 0;     // first table entry of axes 1 and 2
};

struct Parts {
  int32_t q = -1, k = -1, v = -1;
};

__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

template <typename T>
__global__ void split_heads_kernel(const T* __restrict__ proj, T* __restrict__ q, T* __restrict__ k,
                                   T* __restrict__ v, const T* __restrict__ q_norm, const T* __restrict__ k_norm,
                                   RopeParams rope, Parts parts_of, int64_t rows, int64_t tokens, int32_t heads,
                                   int32_t parts, int32_t head_dim, float eps) {
  __shared__ float staged[kWarpsPerBlock][kSplitHeadsMaxHeadDim];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // row = ((b·tokens + n)·heads + h)·parts + part: the proj layout, so row·head_dim is its offset.
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  if (row >= rows) return;  // the whole warp leaves together
  const int32_t part = static_cast<int32_t>(row % parts);
  const int64_t head_row = row / parts;
  const int64_t h = head_row % heads, token = head_row / heads;
  const int64_t b = token / tokens, n = token % tokens;

  T* out = nullptr;
  const T* weight = nullptr;
  bool rotate = false;
  if (part == parts_of.q) {
    out = q, weight = q_norm, rotate = rope.cos != nullptr;
  } else if (part == parts_of.k) {
    out = k, weight = k_norm, rotate = rope.cos != nullptr;
  } else if (part == parts_of.v) {
    out = v;
  }
  if (out == nullptr) return;  // a part nobody asked for
  const T* src = proj + row * head_dim;
  T* dst = out + ((b * heads + h) * tokens + n) * head_dim;

  float x[kMaxPerLane];
  float sum_sq = 0.0f;
#pragma unroll
  for (int i = 0; i < kMaxPerLane; i++) {
    const int d = lane + 32 * i;
    x[i] = d < head_dim ? to_f32(src[d]) : 0.0f;
    sum_sq += x[i] * x[i];
  }
  if (weight != nullptr) {
    const float inv = rsqrtf(warp_sum(sum_sq) / static_cast<float>(head_dim) + eps);
#pragma unroll
    for (int i = 0; i < kMaxPerLane; i++) {
      const int d = lane + 32 * i;
      if (d < head_dim) {
        // Round the normalised value to T before the weight, and the product again (official RMSNorm).
        const float normalised = to_f32(from_f32<T>(x[i] * inv));
        x[i] = to_f32(from_f32<T>(normalised * to_f32(weight[d])));
      }
    }
  }
  if (!rotate) {
#pragma unroll
    for (int i = 0; i < kMaxPerLane; i++) {
      const int d = lane + 32 * i;
      if (d < head_dim) dst[d] = from_f32<T>(x[i]);
    }
    return;
  }

#pragma unroll
  for (int i = 0; i < kMaxPerLane; i++) {
    const int d = lane + 32 * i;
    if (d < head_dim) staged[warp][d] = x[i];
  }
  __syncwarp();
  const int64_t plane = rope.grid1 * rope.grid2;
  const int64_t position[3] = {n / plane, (n / rope.grid2) % rope.grid1, n % rope.grid2};
#pragma unroll
  for (int i = 0; i < kMaxPerLane; i++) {
    const int d = lane + 32 * i;
    if (d >= head_dim) continue;
    // Which slice d is in: its start, width and first table entry.
    int axis = 0, start = 0, width = rope.split0;
    int64_t offset = 0;
    if (d >= rope.split0 + rope.split1) {
      axis = 2, start = rope.split0 + rope.split1, width = head_dim - start, offset = rope.offset2;
    } else if (d >= rope.split0) {
      axis = 1, start = rope.split0, width = rope.split1, offset = rope.offset1;
    }
    const int half = width / 2, within = d - start;
    const bool first = within < half;
    const int64_t entry = offset + position[axis] * half + (first ? within : within - half);
    const float partner = staged[warp][first ? d + half : d - half];
    const float rotated = first ? -partner : partner;
    dst[d] = from_f32<T>(fmaf(x[i], rope.cos[entry], rotated * rope.sin[entry]));
  }
}

template <typename T>
T* ptr_or_null(const TensorRef& t) {
  return t.data ? t.as<T>() : nullptr;
}

}  // namespace

void split_heads(const SplitHeadsArgs& a) {
  use_device(a.proj.device);
  const int64_t rows = a.batch * a.tokens * a.heads * a.parts;
  if (rows == 0 || a.head_dim == 0) return;
  const int64_t blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  SV_CHECK(blocks <= 2147483647LL, "ERR_SHAPE", "split_heads: too many rows for one launch");
  SV_CHECK(a.head_dim <= kSplitHeadsMaxHeadDim && a.heads <= 2147483647LL && a.parts <= 3, "ERR_SHAPE",
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
    split_heads_kernel<T><<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream_of(a.proj)>>>(
        a.proj.as<const T>(), ptr_or_null<T>(a.q), ptr_or_null<T>(a.k), ptr_or_null<T>(a.v),
        ptr_or_null<const T>(a.q_norm), ptr_or_null<const T>(a.k_norm), rope, parts_of, rows, a.tokens,
        static_cast<int32_t>(a.heads), static_cast<int32_t>(a.parts), static_cast<int32_t>(a.head_dim), a.eps);
    CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sv::cuda
