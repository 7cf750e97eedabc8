// CPU reference for native/embedding.h: a row copy per id.
#include <cstring>

#include "../embedding.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

namespace {
template <typename I>
void gather_rows(const EmbeddingArgs& a) {
  const I* ids = a.ids.as<const I>();
  const float* table = a.table.as<const float>();
  float* out = a.out.as<float>();
  const int64_t dim = a.dim;
  parallel_for(a.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int64_t id = static_cast<int64_t>(ids[r]);
      float* o = out + r * dim;
      if (id < 0 || id >= a.vocab) {
        std::memset(o, 0, static_cast<size_t>(dim) * sizeof(float));
      } else {
        std::memcpy(o, table + id * dim, static_cast<size_t>(dim) * sizeof(float));
      }
    }
  });
}
}  // namespace

void embedding(const ExecContext& ctx, const EmbeddingArgs& a) {
  require_f32(a.out, "embedding", "out");
  require_f32(a.table, "embedding", "table");
  if (a.ids.dtype == DType::i64) {
    gather_rows<int64_t>(a);
  } else {
    gather_rows<int32_t>(a);
  }
}

}  // namespace sv::cpu
