// A plain description of a contiguous tensor as kernels see it: pointer, dtype, shape.
// Shared by the N-API glue, the CPU kernels and the CUDA launchers (no N-API or CUDA types here).
#pragma once
#include <cstdint>
#include <string>

#include "dtype.h"

namespace sv {

constexpr int kMaxDims = 8;

struct TensorRef {
  void* data = nullptr;
  DType dtype = DType::f32;
  int32_t ndim = 0;
  int32_t device = -1;  // -1: host memory; >= 0: CUDA device index
  int64_t shape[kMaxDims] = {0, 0, 0, 0, 0, 0, 0, 0};

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
  }
  // Size of dimension d; negative d counts from the end, like Python.
  int64_t size(int d) const { return shape[d < 0 ? ndim + d : d]; }
  // Product of the dimensions before `d` (d may be negative).
  int64_t outer(int d) const {
    int end = d < 0 ? ndim + d : d;
    int64_t n = 1;
    for (int i = 0; i < end; i++) n *= shape[i];
    return n;
  }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  template <typename T>
  T* as() const { return static_cast<T*>(data); }
  std::string shape_string() const {
    std::string s = "[";
    for (int i = 0; i < ndim; i++) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }
};

}  // namespace sv
