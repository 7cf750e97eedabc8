// Shared by every CUDA file: checked calls (llm.c style, but throwing sv::Error so a failure
// becomes a JS error instead of exiting the process), element load/store helpers for f32 / bf16 /
// f16, and small launch utilities.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "../native/error.h"
#include "../native/tensor_ref.h"
#include "runtime_api.h"

namespace sv::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t status, const char* call, const char* file, int line);

// Registers a function that, when a device faults, may explain the fault from what the failing
// kernel left behind (returns "" when it has nothing to say). Called with no CUDA call allowed.
void add_fault_explainer(std::string (*explain)());

#define CUDA_CHECK(call)                                                          \
  do {                                                                            \
    cudaError_t status_ = (call);                                                 \
    if (status_ != cudaSuccess) ::sv::cuda::throw_cuda_error(status_, #call, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: configuration errors are reported at once; execution errors surface
// at the next synchronising call.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

inline cudaStream_t stream_of(const TensorRef& t) { return static_cast<cudaStream_t>(stream(t.device)); }

// Makes `device` current on the calling thread (cheap when it already is).
void use_device(int device);

inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 65535LL * 64) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > max_blocks) blocks = max_blocks;
  return static_cast<unsigned>(blocks);
}

// ---- element conversions: every kernel computes in f32 and stores in the tensor's dtype ----

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(int32_t v) { return static_cast<float>(v); }
__device__ __forceinline__ float to_f32(int64_t v) { return static_cast<float>(v); }
__device__ __forceinline__ float to_f32(uint8_t v) { return static_cast<float>(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

// Calls fn(T{}) for the floating dtypes a compute kernel supports; other dtypes are ERR_DTYPE.
template <typename Fn>
inline void dispatch_float(DType dtype, const char* op, Fn&& fn) {
  switch (dtype) {
    case DType::f32: fn(float{}); return;
    case DType::bf16: fn(__nv_bfloat16{}); return;
    case DType::f16: fn(__half{}); return;
    default:
      fail("ERR_DTYPE", std::string(op) + ": CUDA kernels compute on f32, bf16 or f16, got " + dtype_name(dtype));
  }
}

}  // namespace sv::cuda
