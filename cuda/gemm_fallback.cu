// The CUDA GEMM's own kernels, for where cuBLASLt is absent or has no algorithm (or the kernel
// policy asks for them): WMMA tensor cores for bf16/f16, a tiled SIMT kernel for f32, and the
// empty product (k == 0).
#include <mma.h>

#include <string>

#include "gemm_common.cuh"

namespace sv::cuda {
namespace {

// ---------------------------------------------------------------------------------------------
// Fallback kernels. Tiles of 64×64 output per block; op(b) is staged in shared memory n-major
// ("column-major k×n") whatever its layout in global memory, so one kernel serves both layouts.
// ---------------------------------------------------------------------------------------------

constexpr int BM = 64, BN = 64, BK = 32, PAD = 8;

template <typename T>
__device__ __forceinline__ T load_or_zero(const T* p, bool in_bounds) {
  return in_bounds ? *p : from_f32<T>(0.0f);
}

// alpha·acc + bias, then the optional GELU-tanh epilogue, in f32 (the value stored once).
__device__ __forceinline__ float epilogue_value(float acc, float alpha, float bias, bool gelu) {
  const float y = alpha * acc + bias;
  return gelu ? 0.5f * y * (1.0f + tanhf(0.7978845608028654f * (y + 0.044715f * y * y * y))) : y;
}

// Tensor cores through WMMA 16×16×16: 4 warps, each owning a 32×32 quarter of the tile.
template <typename T>
__global__ void gemm_wmma_kernel(const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ bias,
                                 T* __restrict__ out, int64_t m, int64_t n, int64_t k, int64_t a_stride,
                                 int64_t b_stride, bool trans_b, float alpha, bool gelu) {
  using namespace nvcuda;
  SV_SHARED_ALIGNED(32, T, as, [BM][BK + PAD]);
  SV_SHARED_ALIGNED(32, T, bs, [BN][BK + PAD]);
  SV_SHARED_ALIGNED(32, float, cs, [BM][BN + 4]);
  const int64_t batch = blockIdx.z;
  a += batch * a_stride;
  b += batch * b_stride;
  out += batch * m * n;
  // Row tiles on grid.x (no 65535 limit), column tiles on grid.y.
  const int64_t row0 = blockIdx.x * (int64_t)BM, col0 = blockIdx.y * (int64_t)BN;
  const int warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);
  for (int64_t k0 = 0; k0 < k; k0 += BK) {
    for (int idx = threadIdx.x; idx < BM * BK; idx += blockDim.x) {
      int r = idx / BK, c = idx % BK;
      int64_t gr = row0 + r, gc = k0 + c;
      as[r][c] = load_or_zero(a + gr * k + gc, gr < m && gc < k);
    }
    for (int idx = threadIdx.x; idx < BN * BK; idx += blockDim.x) {
      int nn = trans_b ? idx / BK : idx % BN, kk = trans_b ? idx % BK : idx / BN;  // coalesced either way
      int64_t gn = col0 + nn, gk = k0 + kk;
      bool in = gn < n && gk < k;
      bs[nn][kk] = load_or_zero(trans_b ? b + gn * k + gk : b + gk * n + gn, in);
    }
    __syncthreads();
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb[2];
      for (int i = 0; i < 2; i++) wmma::load_matrix_sync(fa[i], &as[wm * 32 + i * 16][kk], BK + PAD);
      for (int j = 0; j < 2; j++) wmma::load_matrix_sync(fb[j], &bs[wn * 32 + j * 16][kk], BK + PAD);
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++)
      wmma::store_matrix_sync(&cs[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], BN + 4, wmma::mem_row_major);
  __syncthreads();
  for (int idx = threadIdx.x; idx < BM * BN; idx += blockDim.x) {
    int r = idx / BN, c = idx % BN;
    int64_t gr = row0 + r, gc = col0 + c;
    if (gr < m && gc < n) {
      out[gr * n + gc] = from_f32<T>(epilogue_value(cs[r][c], alpha, bias ? to_f32(bias[gc]) : 0.0f, gelu));
    }
  }
}

// f32 SIMT: 256 threads, each computing a 4×4 block of the 64×64 tile.
__global__ void gemm_f32_kernel(const float* __restrict__ a, const float* __restrict__ b, const float* __restrict__ bias,
                                float* __restrict__ out, int64_t m, int64_t n, int64_t k, int64_t a_stride,
                                int64_t b_stride, bool trans_b, float alpha, bool gelu) {
  SV_SHARED(float, as, [BK][BM + 1]);
  SV_SHARED(float, bs, [BK][BN + 1]);
  const int64_t batch = blockIdx.z;
  a += batch * a_stride;
  b += batch * b_stride;
  out += batch * m * n;
  // Row tiles on grid.x (no 65535 limit), column tiles on grid.y.
  const int64_t row0 = blockIdx.x * (int64_t)BM, col0 = blockIdx.y * (int64_t)BN;
  const int tr = threadIdx.x / 16, tc = threadIdx.x % 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < k; k0 += BK) {
    for (int idx = threadIdx.x; idx < BM * BK; idx += blockDim.x) {
      int r = idx / BK, c = idx % BK;
      int64_t gr = row0 + r, gc = k0 + c;
      as[c][r] = (gr < m && gc < k) ? a[gr * k + gc] : 0.0f;
    }
    for (int idx = threadIdx.x; idx < BN * BK; idx += blockDim.x) {
      int nn = trans_b ? idx / BK : idx % BN, kk = trans_b ? idx % BK : idx / BN;
      int64_t gn = col0 + nn, gk = k0 + kk;
      bs[kk][nn] = (gn < n && gk < k) ? (trans_b ? b[gn * k + gk] : b[gk * n + gn]) : 0.0f;
    }
    __syncthreads();
    for (int kk = 0; kk < BK; kk++) {
      float ra[4], rb[4];
      for (int i = 0; i < 4; i++) ra[i] = as[kk][tr * 4 + i];
      for (int j = 0; j < 4; j++) rb[j] = bs[kk][tc * 4 + j];
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(ra[i], rb[j], acc[i][j]);
    }
    __syncthreads();
  }
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) {
      int64_t gr = row0 + tr * 4 + i, gc = col0 + tc * 4 + j;
      if (gr < m && gc < n) out[gr * n + gc] = epilogue_value(acc[i][j], alpha, bias ? bias[gc] : 0.0f, gelu);
    }
}

}  // namespace

void matmul_fallback(const ExecContext& ctx, const MatmulArgs& a) {
  SV_CHECK(a.batch <= 65535, "ERR_SHAPE", "matmul: batch too large for the fallback kernel");
  SV_CHECK((a.n + BN - 1) / BN <= 65535 && (a.m + BM - 1) / BM <= 2147483647LL, "ERR_SHAPE",
           "matmul: output too large for the fallback kernel's grid");
  dim3 grid(static_cast<unsigned>((a.m + BM - 1) / BM), static_cast<unsigned>((a.n + BN - 1) / BN),
            static_cast<unsigned>(a.batch));
  cudaStream_t s = work_stream(ctx);
  const bool gelu = a.epilogue == MatmulEpilogue::gelu_tanh;
  if (a.out.dtype == DType::f32) {
    launch(SV_HERE, gemm_f32_kernel, grid, 256, 0, s, a.a.as<const float>(), a.b.as<const float>(),
           a.bias.data ? a.bias.as<const float>() : nullptr, a.out.as<float>(), a.m, a.n, a.k, a.a_batch_stride,
           a.b_batch_stride, a.trans_b, a.alpha, gelu);
  } else if (a.out.dtype == DType::bf16) {
    launch(SV_HERE, gemm_wmma_kernel<__nv_bfloat16>, grid, 128, 0, s, a.a.as<const __nv_bfloat16>(),
           a.b.as<const __nv_bfloat16>(), a.bias.data ? a.bias.as<const __nv_bfloat16>() : nullptr,
           a.out.as<__nv_bfloat16>(), a.m, a.n, a.k, a.a_batch_stride, a.b_batch_stride, a.trans_b, a.alpha, gelu);
  } else if (a.out.dtype == DType::f16) {
    launch(SV_HERE, gemm_wmma_kernel<__half>, grid, 128, 0, s, a.a.as<const __half>(), a.b.as<const __half>(),
           a.bias.data ? a.bias.as<const __half>() : nullptr, a.out.as<__half>(), a.m, a.n, a.k, a.a_batch_stride,
           a.b_batch_stride, a.trans_b, a.alpha, gelu);
  } else {
    fail("ERR_DTYPE", std::string("matmul: CUDA computes on f32, bf16 or f16, got ") + dtype_name(a.out.dtype));
  }
}

namespace {

template <typename T>
__global__ void empty_product_kernel(const T* __restrict__ bias, T* __restrict__ out, int64_t rows, int64_t n, bool gelu) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    float v = bias ? to_f32(bias[i % n]) : 0.0f;
    if (gelu) v = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    out[i] = from_f32<T>(v);
  }
}

}  // namespace

void empty_product(const ExecContext& ctx, const MatmulArgs& a) {
  const int64_t rows = a.batch * a.m;
  const bool gelu = a.epilogue == MatmulEpilogue::gelu_tanh;
  dispatch_float(a.out.dtype, "matmul", [&](auto t) {
    using T = decltype(t);
    launch(SV_HERE, empty_product_kernel<T>, grid_for(rows * a.n, 256), 256, 0, work_stream(ctx),
           a.bias.data ? a.bias.as<const T>() : nullptr, a.out.as<T>(), rows, a.n, gelu);
  });
}

}  // namespace sv::cuda
