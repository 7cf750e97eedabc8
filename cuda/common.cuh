// Shared by every CUDA file: checked calls (llm.c style, but throwing sv::Error so a failure
// becomes a JS error instead of exiting the process), element load/store helpers for f32 / bf16 /
// f16, and small launch utilities.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

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

// Where a kernel is launched from, for error messages (and the emulator's reports).
struct LaunchSite {
  const char* file;
  int line;
  const char* function;
};
#define SV_HERE (::sv::cuda::LaunchSite{__FILE__, __LINE__, __func__})

// Launches `kernel` on `stream` with the arguments converted to its parameters. Configuration
// errors are reported at once, naming the launch site; execution errors surface at the next
// synchronising call. On the emulated device (STEPVIDEO_CUDA=emulate) the same kernel runs on the
// CPU's SIMT emulator (cuda/emulator).
template <typename... Params, typename... Args>
void launch(LaunchSite site, void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
            Args&&... args) {
#if defined(SV_CUDA_EMULATED)
  const auto status = static_cast<cudaError_t>(
      emu::launch(kernel, grid, block, shared_bytes, stream, emu::LaunchSite{site.file, site.line, site.function},
                  std::forward<Args>(args)...));
#else
  kernel<<<grid, block, shared_bytes, stream>>>(std::forward<Args>(args)...);
  const cudaError_t status = cudaGetLastError();
#endif
  if (status != cudaSuccess) throw_cuda_error(status, "kernel launch", site.file, site.line);
}

// Shared-memory declarations, one spelling for both builds: plain __shared__ variables on a GPU;
// on the emulated device per-block storage made where the declaration is reached (cuda/emulator).
//   SV_SHARED(float, scratch, [32]);                  __shared__ float scratch[32];
//   SV_SHARED_ALIGNED(32, T, tile, [64][40]);         __shared__ __align__(32) T tile[64][40];
//   SV_DYNAMIC_SHARED(unsigned char, smem, 128);      extern __shared__ __align__(128) unsigned char smem[];
#if defined(SV_CUDA_EMULATED)
#define SV_SHARED_ALIGNED(align, type, name, dims)                                                              \
  static constexpr char sv_shared_key_##name = 0;                                                               \
  type(&name) dims = *static_cast<type(*) dims>(::sv::emu::static_shared(                                       \
      &sv_shared_key_##name, sizeof(type dims), (align) > alignof(type dims) ? (align) : alignof(type dims), #name))
#define SV_SHARED(type, name, dims) SV_SHARED_ALIGNED(alignof(type), type, name, dims)
#define SV_DYNAMIC_SHARED(type, name, align) type* const name = static_cast<type*>(::sv::emu::dynamic_shared(align))
#else
#define SV_SHARED_ALIGNED(align, type, name, dims) __shared__ __align__(align) type name dims
#define SV_SHARED(type, name, dims) __shared__ type name dims
#define SV_DYNAMIC_SHARED(type, name, align) extern __shared__ __align__(align) type name[]
#endif

// The context's work stream: where a launcher enqueues its kernels (native/exec_context.h).
inline cudaStream_t work_stream(const ExecContext& ctx) { return static_cast<cudaStream_t>(ctx.work_stream); }

// Makes `device` current on the calling thread (cheap when it already is). Every launcher starts
// with use_device(ctx.device).
void use_device(int device);

// A buffer for the duration of one op, from the device's stream-ordered pool: freed on the work
// stream when it goes, after the kernels enqueued with it (so the launcher may return at once).
class Scratch {
 public:
  Scratch(const ExecContext& ctx, size_t bytes) : device_(ctx.device), data_(alloc(ctx.device, bytes)) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    try {
      free_async(device_, data_);
    } catch (...) {  // a faulted device: the block goes with the process; a destructor never throws
    }
  }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }

 private:
  int device_;
  void* data_;
};

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

// ---- 16-byte vector access: 8 bf16/f16 or 4 f32 elements per load/store ----

template <typename T>
constexpr int kVecElems = 16 / static_cast<int>(sizeof(T));

template <typename T>
__device__ __forceinline__ void load_vec(const T* p, float (&v)[kVecElems<T>]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVecElems<T>; i++) v[i] = to_f32(e[i]);
}

template <typename T>
__device__ __forceinline__ void store_vec(T* p, const float (&v)[kVecElems<T>]) {
  uint4 raw;
  T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVecElems<T>; i++) e[i] = from_f32<T>(v[i]);
  *reinterpret_cast<uint4*>(p) = raw;
}

// Whether a tensor may be read 16 bytes at a time (an absent tensor does not stand in the way).
inline bool aligned16(const TensorRef& t) { return t.data == nullptr || reinterpret_cast<uintptr_t>(t.data) % 16 == 0; }

// The element pointer of an optional tensor, nullptr when it is absent.
template <typename T>
T* ptr_or_null(const TensorRef& t) {
  return t.data ? t.as<T>() : nullptr;
}

// The sum over a full warp, in every lane (butterfly: the same order in each lane, so bit-identical).
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Calls fn(T{}) for any dtype (data movement: copy, fill).
template <typename Fn>
inline void dispatch_any(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32: fn(float{}); return;
    case DType::bf16: fn(__nv_bfloat16{}); return;
    case DType::f16: fn(__half{}); return;
    case DType::i32: fn(int32_t{}); return;
    case DType::i64: fn(int64_t{}); return;
    case DType::u8: fn(uint8_t{}); return;
  }
  fail("ERR_DTYPE", "unknown dtype");
}

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
