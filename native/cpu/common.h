// Shared helpers of the CPU reference kernels: element types with conversions, dtype dispatch,
// and the f32-only guard (the CPU backend computes in fp32; other dtypes are storage only).
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>

#include "../cast.h"
#include "../dtype.h"
#include "../error.h"
#include "../tensor_ref.h"

namespace sv::cpu {

struct bf16_t {
  uint16_t bits;
};
struct f16_t {
  uint16_t bits;
};

template <typename T>
inline double to_double(T v) {
  return static_cast<double>(v);
}
template <>
inline double to_double<bf16_t>(bf16_t v) {
  return bf16_to_f32(v.bits);
}
template <>
inline double to_double<f16_t>(f16_t v) {
  return f16_to_f32(v.bits);
}

template <typename T>
inline T from_double(double v) {
  return static_cast<T>(v);
}
template <>
inline bf16_t from_double<bf16_t>(double v) {
  return bf16_t{f32_to_bf16(static_cast<float>(v))};
}
template <>
inline f16_t from_double<f16_t>(double v) {
  return f16_t{f32_to_f16(static_cast<float>(v))};
}
// Float-to-integer conversions follow native/cast.h: truncation toward zero, saturation, NaN -> 0.
template <>
inline int32_t from_double<int32_t>(double v) {
  return cast::from_real<int32_t>(v);
}
template <>
inline int64_t from_double<int64_t>(double v) {
  return cast::from_real<int64_t>(v);
}
template <>
inline uint8_t from_double<uint8_t>(double v) {
  return cast::from_real<uint8_t>(v);
}

// One element from S to D by the shared conversion rules (native/cast.h).
template <typename S, typename D>
inline D convert_value(S v) {
  if constexpr (std::is_integral_v<S> && std::is_integral_v<D>) {
    return cast::from_integer<D>(static_cast<int64_t>(v));
  } else if constexpr (std::is_integral_v<S>) {
    return from_double<D>(static_cast<float>(v));  // one rounding to f32 (not via f64: no double rounding)
  } else {
    return from_double<D>(to_double(v));  // float values are exact in f64
  }
}

// Calls fn(T{}) with T the storage type of `dtype`.
template <typename Fn>
inline void dispatch_dtype(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: fn(float{}); return;
    case DType::bf16: fn(bf16_t{}); return;
    case DType::f16: fn(f16_t{}); return;
    case DType::i32: fn(int32_t{}); return;
    case DType::i64: fn(int64_t{}); return;
    case DType::u8: fn(uint8_t{}); return;
  }
  fail("ERR_DTYPE", "unknown dtype");
}

inline void require_f32(const TensorRef& t, const char* op, const char* name) {
  SV_CHECK(t.dtype == DType::f32, "ERR_DTYPE",
           std::string(op) + ": the CPU backend computes in f32: expected f32, got " + dtype_name(t.dtype) +
               " (tensor '" + name + "')");
}

}  // namespace sv::cpu
