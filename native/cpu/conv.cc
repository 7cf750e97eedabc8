// CPU reference of native/conv.h, f32. A direct convolution over the virtual input: for a tile of
// 4 output pixels × 4 output channels, every tap contributes dot products of an input pixel's
// channels with the weight's channels for that tap (both contiguous in the channels-last layouts),
// accumulated in 8-wide vectors across all taps and reduced once at the end. Padding and nearest
// upsampling are resolved when the tap's input pixel is looked up (a zero row stands for padding).
#include <algorithm>
#include <cstring>
#include <vector>

#include "../conv.h"
#include "common.h"
#include "parallel.h"

namespace sv::cpu {
namespace {

constexpr int kPixels = 4;    // output pixels per micro-tile
constexpr int kChannels = 4;  // output channels per micro-tile
constexpr int64_t kChannelChunk = 64;  // output channels per work item

typedef float v8f __attribute__((vector_size(32)));

// sums[p][c] = Σ_tap Σ_i xs[tap][p][i] · ws[c][tap·n + i] for i < n. Compiled for AVX-512, AVX2+FMA
// and baseline x86-64 through per-function targets, picked once at run time (as the CPU GEMM does).
__attribute__((always_inline)) inline void dot_tile_body(int64_t taps, int64_t n, const float* const* xs,
                                                         const float* const* ws, float* sums) {
  v8f acc[kPixels][kChannels];
  for (int p = 0; p < kPixels; p++)
    for (int c = 0; c < kChannels; c++) acc[p][c] = v8f{0, 0, 0, 0, 0, 0, 0, 0};
  float tail[kPixels][kChannels] = {};
  const int64_t vec_end = n - n % 8;
  for (int64_t tap = 0; tap < taps; tap++) {
    const float* const* x = xs + tap * kPixels;
    const int64_t w_offset = tap * n;
    for (int64_t i = 0; i < vec_end; i += 8) {
      v8f xv[kPixels], wv[kChannels];
      for (int p = 0; p < kPixels; p++) std::memcpy(&xv[p], x[p] + i, sizeof(v8f));
      for (int c = 0; c < kChannels; c++) std::memcpy(&wv[c], ws[c] + w_offset + i, sizeof(v8f));
      for (int p = 0; p < kPixels; p++)
        for (int c = 0; c < kChannels; c++) acc[p][c] += xv[p] * wv[c];
    }
    for (int64_t i = vec_end; i < n; i++)
      for (int p = 0; p < kPixels; p++)
        for (int c = 0; c < kChannels; c++) tail[p][c] += x[p][i] * ws[c][w_offset + i];
  }
  for (int p = 0; p < kPixels; p++)
    for (int c = 0; c < kChannels; c++) {
      float s = tail[p][c];
      for (int lane = 0; lane < 8; lane++) s += acc[p][c][lane];
      sums[p * kChannels + c] = s;
    }
}

using DotTile = void (*)(int64_t, int64_t, const float* const*, const float* const*, float*);

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512vl,fma"))) void dot_tile_avx512(int64_t taps, int64_t n, const float* const* xs,
                                                                     const float* const* ws, float* sums) {
  dot_tile_body(taps, n, xs, ws, sums);
}
__attribute__((target("avx2,fma"))) void dot_tile_avx2(int64_t taps, int64_t n, const float* const* xs,
                                                       const float* const* ws, float* sums) {
  dot_tile_body(taps, n, xs, ws, sums);
}
#endif
void dot_tile_generic(int64_t taps, int64_t n, const float* const* xs, const float* const* ws, float* sums) {
  dot_tile_body(taps, n, xs, ws, sums);
}

DotTile select_dot_tile() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return dot_tile_avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return dot_tile_avx2;
#endif
  return dot_tile_generic;
}

const DotTile dot_tile = select_dot_tile();

}  // namespace

void conv3d(const ExecContext& ctx, const Conv3dArgs& a) {
  require_f32(a.out, "conv3d", "out");
  require_f32(a.x, "conv3d", "x");
  require_f32(a.weight, "conv3d", "weight");
  if (a.bias.data) require_f32(a.bias, "conv3d", "bias");
  if (a.residual.data) require_f32(a.residual, "conv3d", "residual");
  const float* x = a.x.as<float>();
  const float* w = a.weight.as<float>();
  const float* bias = a.bias.data ? a.bias.as<float>() : nullptr;
  const float* residual = a.residual.data ? a.residual.as<float>() : nullptr;
  float* out = a.out.as<float>();
  const int64_t cin = a.in_ch, cout = a.out_ch, taps = a.taps(), K = a.gemm_k();
  const int64_t virtual_t = a.in_t * a.up_t, virtual_h = a.in_h * a.up_s, virtual_w = a.in_w * a.up_s;
  const int64_t rows = a.batch * a.out_t * a.out_h;
  const int64_t chunks = (cout + kChannelChunk - 1) / kChannelChunk;

  parallel_for(rows * chunks, 1, [&](int64_t begin, int64_t end) {
    const std::vector<float> zeros(static_cast<size_t>(std::max<int64_t>(cin, 1)), 0.0f);
    std::vector<const float*> xs(static_cast<size_t>(taps * kPixels));
    float sums[kPixels * kChannels];
    for (int64_t item = begin; item < end; item++) {
      const int64_t row = item / chunks, chunk = item % chunks;
      const int64_t ho = row % a.out_h, to = (row / a.out_h) % a.out_t, b = row / (a.out_h * a.out_t);
      const int64_t co_begin = chunk * kChannelChunk, co_end = std::min(cout, co_begin + kChannelChunk);
      for (int64_t wo0 = 0; wo0 < a.out_w; wo0 += kPixels) {
        // The input pixel each tap of each output pixel reads (zeros for padding and the ragged edge).
        for (int64_t tap = 0; tap < taps; tap++) {
          const int64_t dt = tap / (a.kh * a.kw), dh = (tap / a.kw) % a.kh, dw = tap % a.kw;
          const int64_t tv = to * a.stride_t + dt - a.pad_front, hv = ho * a.stride_h + dh - a.pad_top;
          for (int p = 0; p < kPixels; p++) {
            const int64_t wo = wo0 + p, wv = wo * a.stride_w + dw - a.pad_left;
            const bool inside = wo < a.out_w && tv >= 0 && tv < virtual_t && hv >= 0 && hv < virtual_h && wv >= 0 &&
                                wv < virtual_w;
            xs[tap * kPixels + p] =
                inside ? x + (((b * a.in_t + tv / a.up_t) * a.in_h + hv / a.up_s) * a.in_w + wv / a.up_s) * cin
                       : zeros.data();
          }
        }
        for (int64_t co0 = co_begin; co0 < co_end; co0 += kChannels) {
          const float* ws[kChannels];
          for (int c = 0; c < kChannels; c++) ws[c] = w + std::min(co0 + c, co_end - 1) * K;  // ragged: recompute, drop
          dot_tile(taps, cin, xs.data(), ws, sums);
          for (int p = 0; p < kPixels && wo0 + p < a.out_w; p++) {
            const int64_t pixel = row * a.out_w + wo0 + p;
            for (int c = 0; c < kChannels && co0 + c < co_end; c++) {
              const int64_t idx = pixel * cout + co0 + c;
              float v = sums[p * kChannels + c];
              if (bias) v += bias[co0 + c];
              if (residual) v += residual[idx];
              out[idx] = v;
            }
          }
        }
      }
    }
  });
}

}  // namespace sv::cpu
