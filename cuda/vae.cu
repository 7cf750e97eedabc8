// CUDA twins of native/cpu/vae.cc. Memory-bound elementwise work: 16-byte vector loads and stores
// (8 bf16 or 4 f32 channels per thread) when the channel count and pointers allow, scalars otherwise.
#include <cstdint>

#include "../native/vae.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

template <typename T, int Vec>
struct alignas(sizeof(T) * Vec) Pack {
  T v[Vec];
};

template <typename T, int Vec>
__global__ void upsample_residual_kernel(const T* h, const T* __restrict__ x, T* out,  // out may be h (in place)
                                         int64_t packs, int64_t channels, int64_t frames, int64_t height,
                                         int64_t width, int32_t up_t, int32_t up_s) {
  const int64_t x_t = frames / up_t, x_h = height / up_s, x_w = width / up_s;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < packs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t e = i * Vec, c = e % channels, p = e / channels;  // Vec divides channels: one pixel per pack
    const int64_t w = p % width, y = (p / width) % height, t = (p / (width * height)) % frames;
    const int64_t b = p / (width * height * frames);
    const int64_t xe = (((b * x_t + t / up_t) * x_h + y / up_s) * x_w + w / up_s) * channels + c;
    const Pack<T, Vec> hv = *reinterpret_cast<const Pack<T, Vec>*>(h + e);
    const Pack<T, Vec> xv = *reinterpret_cast<const Pack<T, Vec>*>(x + xe);
    Pack<T, Vec> ov;
#pragma unroll
    for (int j = 0; j < Vec; j++) {
      const float r = to_f32(xv.v[j]), s = to_f32(hv.v[j]) + r;
      ov.v[j] = from_f32<T>(s / (1.0f + __expf(-s)) + r);
    }
    *reinterpret_cast<Pack<T, Vec>*>(out + e) = ov;
  }
}

bool aligned_16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void upsample_residual(const ExecContext& ctx, const UpsampleResidualArgs& a) {
  use_device(ctx.device);
  const int64_t n = a.batch * a.frames * a.height * a.width * a.channels;
  if (n == 0) return;
  dispatch_float(a.out.dtype, "upsample_residual", [&](auto t) {
    using T = decltype(t);
    constexpr int kVec = 16 / sizeof(T);
    const bool vector = a.channels % kVec == 0 && aligned_16(a.h.data) && aligned_16(a.x.data) && aligned_16(a.out.data);
    const int threads = 256;
    if (vector) {
      launch(SV_HERE, upsample_residual_kernel<T, kVec>, grid_for(n / kVec, threads), threads, 0, work_stream(ctx),
             a.h.as<const T>(), a.x.as<const T>(), a.out.as<T>(), n / kVec, a.channels, a.frames, a.height, a.width,
             a.up_t, a.up_s);
    } else {
      launch(SV_HERE, upsample_residual_kernel<T, 1>, grid_for(n, threads), threads, 0, work_stream(ctx),
             a.h.as<const T>(), a.x.as<const T>(), a.out.as<T>(), n, a.channels, a.frames, a.height, a.width, a.up_t,
             a.up_s);
    }
  });
}

}  // namespace sv::cuda
