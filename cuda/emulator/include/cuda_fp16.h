// f16 as the emulated device offers it: storage, conversions (round to nearest even), the raw
// and pair types, with the names and layout of NVIDIA's cuda_fp16.h.
#pragma once
#include <cstdint>

#include "../../../native/dtype.h"

struct __half_raw {
  unsigned short x;
};
struct __half {
  uint16_t __x;
  __half() = default;
  __half(float f) : __x(sv::f32_to_f16(f)) {}
  __half(__half_raw raw) : __x(raw.x) {}
  operator float() const { return sv::f16_to_f32(__x); }
};
struct __half2 {
  __half x, y;
};
static_assert(sizeof(__half) == 2 && sizeof(__half2) == 4, "f16 storage is 2 bytes");

inline __half __float2half_rn(float f) { return __half(f); }
inline __half __float2half(float f) { return __half(f); }
inline float __half2float(__half h) { return sv::f16_to_f32(h.__x); }
inline __half2 __floats2half2_rn(float lo, float hi) { return __half2{__half(lo), __half(hi)}; }
