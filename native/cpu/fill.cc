// CPU reference: every element set to one value, converted to the tensor's dtype (native/cast.h's rules).
#include "../kernels.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {

void fill(const ExecContext& ctx, const FillArgs& args) {
  dispatch_dtype(args.out.dtype, [&](auto t) {
    using T = decltype(t);
    T value = from_double<T>(args.value);
    T* out = static_cast<T*>(args.out.data);
    parallel_for(args.out.numel(), 65536, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) out[i] = value;
    });
  });
}

}  // namespace sv::cpu
