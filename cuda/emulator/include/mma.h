// nvcuda::wmma as the emulated device offers it: 16x16x16 fragments of bf16/f16 inputs and f32
// accumulators. A fragment's elements are opaque in CUDA; here lane l holds elements 8l..8l+7 of
// the tile in row-major order of its logical matrix (A: m x k, B: k x n, accumulator: m x n).
// Loads, stores and fills are per lane; mma_sync is a warp collective (ptx.cc), as every lane must
// take part. Only the shapes and types the project uses exist.
#pragma once
#include <cstdint>
#include <type_traits>

#include "../device.h"
#include "cuda_bf16.h"
#include "cuda_fp16.h"

namespace sv::emu::ptx {
// d = a·b + c for one warp: each lane passes its 8 elements of each fragment.
void wmma_m16n16k16(float* d, const float* a, const float* b, const float* c, const char* file, int line);
}  // namespace sv::emu::ptx

namespace nvcuda::wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulator offers 16x16x16 fragments only");
  static constexpr int num_elements = 8;
  float x[8];  // values as f32 (inputs are exact in f32)
};

namespace detail {
inline unsigned lane() { return (sv::emu::view().thread_idx.x + sv::emu::view().block_dim.x *
                                (sv::emu::view().thread_idx.y + sv::emu::view().block_dim.y * sv::emu::view().thread_idx.z)) % 32; }
template <typename T>
float value(const T& v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    return static_cast<float>(v);
  }
}
}  // namespace detail

// Element (r, c) of the logical matrix (row-major index 16r + c) for a fragment of layout L.
template <typename Use, typename T, typename L>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, L>& f, const T* p, unsigned ldm) {
  static_assert(!std::is_same_v<Use, accumulator>, "accumulators are loaded with a layout argument");
  const unsigned l = detail::lane();
  for (int e = 0; e < 8; e++) {
    const unsigned index = 8 * l + e, r = index / 16, c = index % 16;
    f.x[e] = detail::value(std::is_same_v<L, row_major> ? p[r * ldm + c] : p[c * ldm + r]);
  }
}

template <typename T>
void fill_fragment(fragment<accumulator, 16, 16, 16, T>& f, float v) {
  for (float& e : f.x) e = v;
}

template <typename T>
void store_matrix_sync(T* p, const fragment<accumulator, 16, 16, 16, T>& f, unsigned ldm, layout_t layout) {
  const unsigned l = detail::lane();
  for (int e = 0; e < 8; e++) {
    const unsigned index = 8 * l + e, r = index / 16, c = index % 16;
    (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = static_cast<T>(f.x[e]);
  }
}

template <typename TA, typename LA, typename TB, typename LB, typename TC>
void mma_sync(fragment<accumulator, 16, 16, 16, TC>& d, const fragment<matrix_a, 16, 16, 16, TA, LA>& a,
              const fragment<matrix_b, 16, 16, 16, TB, LB>& b, const fragment<accumulator, 16, 16, 16, TC>& c,
              const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  sv::emu::ptx::wmma_m16n16k16(d.x, a.x, b.x, c.x, file, line);
}

}  // namespace nvcuda::wmma
