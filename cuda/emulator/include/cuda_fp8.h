// FP8 conversions as the emulated device offers them: e4m3 only (the format the project uses),
// round to nearest even, saturating to +-448 (the host twins in native/fp8.h, which are checked
// against the CPU reference). Other formats and modes stop the process with a message.
#pragma once
#include <cstdio>
#include <cstdlib>

#include "../../../native/fp8.h"
#include "cuda_fp16.h"

typedef unsigned char __nv_fp8_storage_t;
enum __nv_fp8_interpretation_t { __NV_E4M3, __NV_E5M2 };
enum __nv_saturation_t { __NV_NOSAT, __NV_SATFINITE };

inline void sv_emu_fp8_unsupported(const char* what) {
  std::fprintf(stderr, "stepvideo emulator: %s is not emulated (e4m3 with __NV_SATFINITE only)\n", what);
  std::abort();
}

inline __half_raw __nv_cvt_fp8_to_halfraw(__nv_fp8_storage_t code, __nv_fp8_interpretation_t format) {
  if (format != __NV_E4M3) sv_emu_fp8_unsupported("an FP8 format other than e4m3");
  return __half_raw{sv::f32_to_f16(sv::fp8_e4m3_decode(code))};  // every e4m3 value is exact in f16
}

inline __nv_fp8_storage_t __nv_cvt_float_to_fp8(float value, __nv_saturation_t saturation, __nv_fp8_interpretation_t format) {
  if (format != __NV_E4M3 || saturation != __NV_SATFINITE) sv_emu_fp8_unsupported("this FP8 conversion");
  return sv::fp8_e4m3_encode(value);
}
