// CUDA twin of native/cpu/embedding.cc. One thread per output element (grid-stride); consecutive
// threads copy consecutive columns of one row, so loads and stores are coalesced.
#include "../native/embedding.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

template <typename T, typename I>
__global__ void embedding_kernel(const T* __restrict__ table, const I* __restrict__ ids, T* __restrict__ out,
                                 int64_t rows, int64_t dim, int64_t vocab) {
  const int64_t n = rows * dim;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t row = i / dim, col = i % dim;
    const int64_t id = static_cast<int64_t>(ids[row]);
    // Ids were range-checked on the host; this guard only keeps a bad id from reading outside the table.
    out[i] = (id >= 0 && id < vocab) ? table[id * dim + col] : from_f32<T>(0.0f);
  }
}

template <typename T>
void launch_embedding(const ExecContext& ctx, const EmbeddingArgs& a) {
  const int64_t n = a.rows * a.dim;
  if (a.ids.dtype == DType::i64) {
    launch(SV_HERE, embedding_kernel<T, int64_t>, grid_for(n, 256), 256, 0, work_stream(ctx), a.table.as<const T>(),
           a.ids.as<const int64_t>(), a.out.as<T>(), a.rows, a.dim, a.vocab);
  } else {
    launch(SV_HERE, embedding_kernel<T, int32_t>, grid_for(n, 256), 256, 0, work_stream(ctx), a.table.as<const T>(),
           a.ids.as<const int32_t>(), a.out.as<T>(), a.rows, a.dim, a.vocab);
  }
}

}  // namespace

void embedding(const ExecContext& ctx, const EmbeddingArgs& a) {
  use_device(ctx.device);
  if (a.rows == 0 || a.dim == 0) return;
  dispatch_float(a.out.dtype, "embedding", [&](auto t) { launch_embedding<decltype(t)>(ctx, a); });
}

}  // namespace sv::cuda
