// CUDA twin of native/cpu/copy.cc: strided copy with dtype conversion.
#include <type_traits>

#include "../native/cast.h"
#include "../native/kernels.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

struct StridedIndex {
  int32_t ndim;
  int64_t shape[kMaxDims];
  int64_t src_strides[kMaxDims];
  int64_t dst_strides[kMaxDims];
};

// One element from S to D by the rules shared with the CPU backend (native/cast.h).
template <typename S, typename D>
__device__ __forceinline__ D convert(S value) {
  if constexpr (std::is_same_v<S, D>) {
    return value;
  } else if constexpr (std::is_integral_v<S> && std::is_integral_v<D>) {
    return cast::from_integer<D>(static_cast<int64_t>(value));
  } else if constexpr (std::is_integral_v<D>) {
    return cast::from_real<D>(to_f32(value));
  } else if constexpr (std::is_integral_v<S>) {
    return from_f32<D>(static_cast<float>(value));  // one rounding to f32, like the CPU twin
  } else {
    return from_f32<D>(to_f32(value));
  }
}

template <typename S, typename D>
__global__ void copy_strided_kernel(const S* __restrict__ src, D* __restrict__ dst, StridedIndex index, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t rest = i, s = 0, d = 0;
    for (int k = index.ndim - 1; k >= 0; k--) {
      int64_t coord = rest % index.shape[k];
      rest /= index.shape[k];
      s += coord * index.src_strides[k];
      d += coord * index.dst_strides[k];
    }
    dst[d] = convert<S, D>(src[s]);
  }
}

bool is_contiguous(const CopyArgs& a, const int64_t* strides) {
  int64_t expected = 1;
  for (int k = a.ndim - 1; k >= 0; k--) {
    if (a.shape[k] != 1 && strides[k] != expected) return false;
    expected *= a.shape[k];
  }
  return true;
}

}  // namespace

void copy(const ExecContext& ctx, const CopyArgs& args) {
  use_device(ctx.device);
  cudaStream_t stream = work_stream(ctx);
  int64_t n = 1;
  for (int k = 0; k < args.ndim; k++) n *= args.shape[k];
  if (n == 0) return;
  if (args.src.dtype == args.dst.dtype && is_contiguous(args, args.src_strides) && is_contiguous(args, args.dst_strides)) {
    size_t elem = dtype_size(args.src.dtype);
    CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(args.dst.data) + args.dst_offset * elem,
                               static_cast<const char*>(args.src.data) + args.src_offset * elem, n * elem,
                               cudaMemcpyDeviceToDevice, stream));
    return;
  }
  StridedIndex index;
  index.ndim = args.ndim;
  for (int k = 0; k < kMaxDims; k++) {
    index.shape[k] = k < args.ndim ? args.shape[k] : 1;
    index.src_strides[k] = k < args.ndim ? args.src_strides[k] : 0;
    index.dst_strides[k] = k < args.ndim ? args.dst_strides[k] : 0;
  }
  dispatch_any(args.src.dtype, [&](auto s) {
    dispatch_any(args.dst.dtype, [&](auto d) {
      using S = decltype(s);
      using D = decltype(d);
      launch(SV_HERE, copy_strided_kernel<S, D>, grid_for(n, 256), 256, 0, stream,
             static_cast<const S*>(args.src.data) + args.src_offset, static_cast<D*>(args.dst.data) + args.dst_offset,
             index, n);
    });
  });
}

}  // namespace sv::cuda
