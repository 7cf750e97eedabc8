// bf16 as the emulated device offers it: storage, conversions (round to nearest even) and the
// pair type, with the same names and layout as NVIDIA's cuda_bf16.h (the low half of a pair is .x).
#pragma once
#include <cstdint>

#include "../../../native/dtype.h"

struct __nv_bfloat16 {
  uint16_t __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : __x(sv::f32_to_bf16(f)) {}
  operator float() const { return sv::bf16_to_f32(__x); }
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
static_assert(sizeof(__nv_bfloat16) == 2 && sizeof(__nv_bfloat162) == 4, "bf16 storage is 2 bytes");

inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return sv::bf16_to_f32(b.__x); }
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) { return __nv_bfloat162{__nv_bfloat16(lo), __nv_bfloat16(hi)}; }
