// The element conversion rules of casts, dtype-converting copies and fill, shared by the CPU and
// CUDA backends (this header is compiled by both compilers), so the two agree at every edge:
//  - float -> float: through f32, each step rounding to nearest even;
//  - integer -> float: to f32 in one rounding to nearest even, then as float -> float;
//  - float -> integer: truncation toward zero, saturating at the type's range, NaN -> 0;
//  - integer -> integer: saturating at the destination's range (no wrap-around).
// fill() converts its f64 value by the same rules. None of them is undefined behaviour for any input.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define SV_CAST_FN __host__ __device__ inline
#else
#define SV_CAST_FN inline
#endif

namespace sv::cast {

template <typename I>
struct Range;
template <>
struct Range<int32_t> {
  static constexpr int64_t lo = INT32_MIN, hi = INT32_MAX;
};
template <>
struct Range<int64_t> {
  static constexpr int64_t lo = INT64_MIN, hi = INT64_MAX;
};
template <>
struct Range<uint8_t> {
  static constexpr int64_t lo = 0, hi = 255;
};

// A real value (f32 or f64) to the integer type I.
template <typename I>
SV_CAST_FN I from_real(double v) {
  if (!(v == v)) return 0;
  // The bounds as doubles: exact for every range here except INT64_MAX, which rounds up to 2^63,
  // the first double that no longer fits.
  if (v <= static_cast<double>(Range<I>::lo)) return static_cast<I>(Range<I>::lo);
  if (v >= static_cast<double>(Range<I>::hi)) return static_cast<I>(Range<I>::hi);
  return static_cast<I>(v);  // |v| inside the range: truncation toward zero is defined
}

// An integer value to the integer type I.
template <typename I>
SV_CAST_FN I from_integer(int64_t v) {
  return static_cast<I>(v < Range<I>::lo ? Range<I>::lo : v > Range<I>::hi ? Range<I>::hi : v);
}

}  // namespace sv::cast
