// CPU reference of native/random.h: each stream block (4 normals) is computed by the shared
// host/device code and its lanes that fall inside [offset, offset + numel) are stored.
#include "../random.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

void random_normal(const ExecContext& ctx, const RandomNormalArgs& a) {
  require_f32(a.out, "random_normal", "out");
  float* out = a.out.as<float>();
  const int64_t n = a.out.numel();
  if (n == 0) return;
  const uint64_t first_block = a.offset / 4, last_block = (a.offset + static_cast<uint64_t>(n) - 1) / 4;
  const int64_t blocks = static_cast<int64_t>(last_block - first_block + 1);
  parallel_for(blocks, 1024, [&](int64_t begin, int64_t end) {
    float values[4];
    for (int64_t b = begin; b < end; b++) {
      const uint64_t block = first_block + static_cast<uint64_t>(b);
      philox::normal4(a.seed, block, values);
      for (int lane = 0; lane < 4; lane++) {
        const uint64_t element = block * 4 + static_cast<uint64_t>(lane);
        if (element < a.offset || element - a.offset >= static_cast<uint64_t>(n)) continue;
        out[element - a.offset] = values[lane];
      }
    }
  });
}

}  // namespace sv::cpu
