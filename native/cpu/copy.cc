// CPU reference: strided copy with dtype conversion.
#include <cstring>

#include "../kernels.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {
namespace {

template <typename S, typename D>
void copy_typed(const CopyArgs& a) {
  const S* src = static_cast<const S*>(a.src.data) + a.src_offset;
  D* dst = static_cast<D*>(a.dst.data) + a.dst_offset;
  const int nd = a.ndim;
  if (nd == 0) {
    dst[0] = convert_value<S, D>(src[0]);
    return;
  }
  const int64_t inner = a.shape[nd - 1];
  const int64_t s_inner = a.src_strides[nd - 1], d_inner = a.dst_strides[nd - 1];
  int64_t rows = 1;
  for (int i = 0; i < nd - 1; i++) rows *= a.shape[i];
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, inner)), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; row++) {
      // Decompose the row index into the outer coordinates.
      int64_t rest = row, s_off = 0, d_off = 0;
      for (int i = nd - 2; i >= 0; i--) {
        int64_t coord = rest % a.shape[i];
        rest /= a.shape[i];
        s_off += coord * a.src_strides[i];
        d_off += coord * a.dst_strides[i];
      }
      const S* s = src + s_off;
      D* d = dst + d_off;
      if constexpr (std::is_same_v<S, D>) {
        if (s_inner == 1 && d_inner == 1) {
          std::memcpy(d, s, static_cast<size_t>(inner) * sizeof(S));
          continue;
        }
      }
      for (int64_t j = 0; j < inner; j++) d[j * d_inner] = convert_value<S, D>(s[j * s_inner]);
    }
  });
}

}  // namespace

void copy(const ExecContext& ctx, const CopyArgs& args) {
  dispatch_dtype(args.src.dtype, [&](auto s) {
    dispatch_dtype(args.dst.dtype, [&](auto d) { copy_typed<decltype(s), decltype(d)>(args); });
  });
}

}  // namespace sv::cpu

#include "convert.h"

namespace sv::cpu {

void convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t count) {
  if (count == 0) return;  // an empty array may come with null pointers, which memcpy must not see
  if (dst_dtype == src_dtype) {
    std::memcpy(dst, src, static_cast<size_t>(count) * dtype_size(dst_dtype));
    return;
  }
  // The conversions weight loading does all the time, without the generic double round trip.
  if (src_dtype == DType::bf16 && dst_dtype == DType::f32) {
    const uint16_t* in = static_cast<const uint16_t*>(src);
    uint32_t* out = static_cast<uint32_t*>(dst);
    for (int64_t i = 0; i < count; i++) out[i] = static_cast<uint32_t>(in[i]) << 16;
    return;
  }
  if (src_dtype == DType::f32 && dst_dtype == DType::bf16) {
    const float* in = static_cast<const float*>(src);
    uint16_t* out = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < count; i++) out[i] = f32_to_bf16(in[i]);
    return;
  }
  dispatch_dtype(src_dtype, [&](auto s) {
    dispatch_dtype(dst_dtype, [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      const S* in = static_cast<const S*>(src);
      D* out = static_cast<D*>(dst);
      for (int64_t i = 0; i < count; i++) out[i] = convert_value<S, D>(in[i]);
    });
  });
}

}  // namespace sv::cpu
