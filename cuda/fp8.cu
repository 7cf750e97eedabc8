// FP8 for the CUDA backend (native/fp8.h): per-row e4m3 quantization (one block per row: the row's
// amax, then every element divided by amax/448 and converted by the hardware, round to nearest
// even, saturating to ±448), dequantization, and the FP8 Linear: activations quantized per row and
// the e4m3 × e4m3 cuBLASLt GEMM with the per-channel weight scales and per-row activation scales
// applied in its epilogue (gemm_fp8.cu); without it, the weight dequantized to a temporary and the
// regular GEMM (the accuracy of FP8 weights, none of their speed).
#include <cuda_fp8.h>

#include <memory>

#include "../native/fp8.h"
#include "../native/storage.h"
#include "common.cuh"

namespace sv::cuda {
namespace {

constexpr int kQuantizeThreads = 256;

__device__ __forceinline__ float decode_e4m3(uint8_t code) {
  __half_raw raw = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(code), __NV_E4M3);
  return __half2float(__half(raw));
}

// Block-wide max of non-negative values (NaN ignored, as fmaxf does).
__device__ float block_max(float value, float* shared) {
  for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < static_cast<int>(blockDim.x / 32) ? shared[lane] : 0.0f;
    for (int offset = 16; offset > 0; offset >>= 1) value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
    if (lane == 0) shared[0] = value;
  }
  __syncthreads();
  return shared[0];
}

// One block per row: scale = amax / 448; codes = e4m3(x / scale) (zero codes for an all-zero row).
template <typename T>
__global__ void quantize_rows_kernel(const T* __restrict__ x, uint8_t* __restrict__ codes, float* __restrict__ scales,
                                     int64_t cols) {
  SV_SHARED(float, shared, [kQuantizeThreads / 32]);
  const int64_t row = blockIdx.x;
  const T* xr = x + row * cols;
  uint8_t* cr = codes + row * cols;
  float amax = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) amax = fmaxf(amax, fabsf(to_f32(xr[j])));
  amax = block_max(amax, shared);
  const float scale = amax / kFp8E4M3Max;
  if (threadIdx.x == 0) scales[row] = scale;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    cr[j] = scale == 0.0f ? uint8_t{0}
                          : static_cast<uint8_t>(__nv_cvt_float_to_fp8(to_f32(xr[j]) / scale, __NV_SATFINITE, __NV_E4M3));
  }
}

template <typename T>
__global__ void dequantize_kernel(const uint8_t* __restrict__ codes, const float* __restrict__ scales,
                                  T* __restrict__ out, int64_t total, int64_t cols) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = from_f32<T>(decode_e4m3(codes[i]) * scales[i / cols]);
  }
}

void launch_quantize(const ExecContext& ctx, const TensorRef& x, uint8_t* codes, float* scales, int64_t rows, int64_t cols) {
  if (rows == 0) return;
  SV_CHECK(rows <= 2147483647LL, "ERR_SHAPE", "fp8_quantize: too many rows for one launch");
  dispatch_float(x.dtype, "fp8_quantize", [&](auto t) {
    using T = decltype(t);
    launch(SV_HERE, quantize_rows_kernel<T>, static_cast<unsigned>(rows), kQuantizeThreads, 0, work_stream(ctx),
           x.as<const T>(), codes, scales, cols);
  });
}

void launch_dequantize(const ExecContext& ctx, const uint8_t* codes, const float* scales, const TensorRef& out, int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  if (total == 0) return;
  dispatch_float(out.dtype, "fp8_dequantize", [&](auto t) {
    using T = decltype(t);
    launch(SV_HERE, dequantize_kernel<T>, grid_for(total, 256), 256, 0, work_stream(ctx), codes, scales, out.as<T>(),
           total, cols);
  });
}

// A device temporary shaped [rows, cols] of `dtype`, freed stream-ordered when `keep` goes.
TensorRef temporary(int device, DType dtype, int64_t rows, int64_t cols, std::shared_ptr<Storage>* keep) {
  *keep = Storage::create(device, static_cast<size_t>(rows * cols) * dtype_size(dtype));
  TensorRef t;
  t.data = (*keep)->data();
  t.dtype = dtype;
  t.ndim = 2;
  t.device = device;
  t.shape[0] = rows;
  t.shape[1] = cols;
  return t;
}

}  // namespace

void fp8_quantize(const ExecContext& ctx, const Fp8QuantizeArgs& a) {
  use_device(ctx.device);
  launch_quantize(ctx, a.x, a.codes.as<uint8_t>(), a.scales.as<float>(), a.rows, a.cols);
}

void fp8_dequantize(const ExecContext& ctx, const Fp8DequantizeArgs& a) {
  use_device(ctx.device);
  launch_dequantize(ctx, a.codes.as<const uint8_t>(), a.scales.as<const float>(), a.out, a.rows, a.cols);
}

void linear_fp8(const ExecContext& ctx, const LinearFp8Args& a) {
  use_device(ctx.device);
  if (a.rows == 0 || a.n == 0) return;
  const int device = ctx.device;
  MatmulArgs m;
  m.out = a.out;
  m.a = a.x;
  m.m = a.rows;
  m.n = a.n;
  m.k = a.k;
  m.trans_b = true;
  m.epilogue = a.epilogue;
  std::shared_ptr<Storage> x_codes_keep, x_scales_keep, x_keep, w_keep;
  if (a.activations == Fp8Activations::per_row) {
    TensorRef x_codes = temporary(device, DType::u8, a.rows, a.k, &x_codes_keep);
    TensorRef x_scales = temporary(device, DType::f32, a.rows, 1, &x_scales_keep);
    launch_quantize(ctx, a.x, x_codes.as<uint8_t>(), x_scales.as<float>(), a.rows, a.k);
    if (gemm_fp8_cublaslt(ctx, a.out, x_codes, x_scales, a.codes, a.scales, a.rows, a.n, a.k, a.epilogue)) return;
    if (a.epilogue == MatmulEpilogue::gelu_tanh &&
        gemm_fp8_cublaslt(ctx, a.out, x_codes, x_scales, a.codes, a.scales, a.rows, a.n, a.k, MatmulEpilogue::none)) {
      UnaryArgs gelu;  // no FP8 algorithm with the GELU epilogue here: GELU in place afterwards
      gelu.out = a.out;
      gelu.x = a.out;
      gelu.op = UnaryOp::gelu_tanh;
      unary(ctx, gelu);
      return;
    }
    // No FP8 GEMM: the same quantized activations, dequantized for the regular GEMM.
    m.a = temporary(device, a.out.dtype, a.rows, a.k, &x_keep);
    launch_dequantize(ctx, x_codes.as<const uint8_t>(), x_scales.as<const float>(), m.a, a.rows, a.k);
  }
  m.b = temporary(device, a.out.dtype, a.n, a.k, &w_keep);
  launch_dequantize(ctx, a.codes.as<const uint8_t>(), a.scales.as<const float>(), m.b, a.n, a.k);
  matmul(ctx, m);
}

}  // namespace sv::cuda
