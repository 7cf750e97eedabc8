// CUDA twin of native/cpu/random.cc: one thread per stream block of four normals, computed by the
// same host/device code (native/random.h), so f32 results equal the CPU's bit for bit. Other
// dtypes are the f32 value rounded once.
#include "../native/random.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

template <typename T>
__global__ void random_normal_kernel(T* __restrict__ out, int64_t n, uint64_t seed, uint64_t offset, uint64_t first_block,
                                     int64_t blocks) {
  for (int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; b < blocks; b += (int64_t)gridDim.x * blockDim.x) {
    const uint64_t block = first_block + static_cast<uint64_t>(b);
    float values[4];
    philox::normal4(seed, block, values);
#pragma unroll
    for (int lane = 0; lane < 4; lane++) {
      const uint64_t element = block * 4 + static_cast<uint64_t>(lane);
      if (element < offset || element - offset >= static_cast<uint64_t>(n)) continue;
      out[element - offset] = from_f32<T>(values[lane]);
    }
  }
}

}  // namespace

void random_normal(const ExecContext& ctx, const RandomNormalArgs& a) {
  use_device(ctx.device);
  const int64_t n = a.out.numel();
  if (n == 0) return;
  const uint64_t first_block = a.offset / 4, last_block = (a.offset + static_cast<uint64_t>(n) - 1) / 4;
  const int64_t blocks = static_cast<int64_t>(last_block - first_block + 1);
  dispatch_float(a.out.dtype, "random_normal", [&](auto t) {
    using T = decltype(t);
    launch(SV_HERE, random_normal_kernel<T>, grid_for(blocks, 256), 256, 0, work_stream(ctx), a.out.as<T>(), n, a.seed,
           a.offset, first_block, blocks);
  });
}

}  // namespace sv::cuda
