// GEMM for the CUDA backend: out[b] = alpha · a[b] · op(b[b]) + bias (then optionally GELU-tanh),
// row-major, f32 accumulate. First choice is cuBLASLt (loaded at run time, heuristic result cached
// per shape, bias and GELU fused in its epilogue). Where cuBLASLt is absent or has no algorithm, an
// own kernel runs instead: WMMA tensor cores for bf16/f16, a tiled SIMT kernel for f32.
// STEPVIDEO_GEMM=fallback forces it.
#include <dlfcn.h>
#include <mma.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "../native/kernels.h"
#include "common.cuh"
#include "cublaslt.h"

namespace sv::cuda {

// ---------------------------------------------------------------------------------------------
// cuBLASLt loader
// ---------------------------------------------------------------------------------------------
namespace lt {
namespace {

std::string load_error;

void* open_library() {
  std::vector<std::string> candidates;
  if (const char* explicit_path = std::getenv("STEPVIDEO_CUBLASLT")) candidates.push_back(explicit_path);
  for (const char* name : {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"}) {
    candidates.push_back(name);  // LD_LIBRARY_PATH, rpath and the system cache
    for (const char* env : {"CUDA_PATH", "CUDA_HOME"}) {
      if (const char* root = std::getenv(env)) {
        candidates.push_back(std::string(root) + "/lib64/" + name);
        candidates.push_back(std::string(root) + "/targets/x86_64-linux/lib/" + name);
      }
    }
    candidates.push_back(std::string("/usr/local/cuda/lib64/") + name);
    candidates.push_back(std::string("/usr/local/cuda/targets/x86_64-linux/lib/") + name);
  }
  std::string tried;
  for (const std::string& path : candidates) {
    if (void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) return handle;
    tried += (tried.empty() ? "" : ", ") + path;
  }
  load_error = "libcublasLt not found (tried " + tried + ")";
  return nullptr;
}

template <typename F>
bool bind(void* library, const char* symbol, F* target) {
  *target = reinterpret_cast<F>(dlsym(library, symbol));
  if (*target == nullptr) {
    load_error = std::string("libcublasLt lacks ") + symbol;
    return false;
  }
  return true;
}

}  // namespace

const Api* api(const char** why) {
  static Api table;
  static const Api* loaded = [] () -> const Api* {
    void* library = open_library();
    if (library == nullptr) return nullptr;
    bool ok = bind(library, "cublasLtCreate", &table.create) &&
              bind(library, "cublasLtMatmulDescCreate", &table.matmul_desc_create) &&
              bind(library, "cublasLtMatmulDescDestroy", &table.matmul_desc_destroy) &&
              bind(library, "cublasLtMatmulDescSetAttribute", &table.matmul_desc_set) &&
              bind(library, "cublasLtMatrixLayoutCreate", &table.layout_create) &&
              bind(library, "cublasLtMatrixLayoutDestroy", &table.layout_destroy) &&
              bind(library, "cublasLtMatrixLayoutSetAttribute", &table.layout_set) &&
              bind(library, "cublasLtMatmulPreferenceCreate", &table.pref_create) &&
              bind(library, "cublasLtMatmulPreferenceDestroy", &table.pref_destroy) &&
              bind(library, "cublasLtMatmulPreferenceSetAttribute", &table.pref_set) &&
              bind(library, "cublasLtMatmulAlgoGetHeuristic", &table.heuristic) &&
              bind(library, "cublasLtMatmul", &table.matmul) &&
              bind(library, "cublasLtGetStatusName", &table.status_name);
    return ok ? &table : nullptr;
  }();
  if (why) *why = load_error.c_str();
  return loaded;
}

}  // namespace lt

namespace {

// ---------------------------------------------------------------------------------------------
// cuBLASLt path. Row-major out[m,n] = a[m,k]·op(b) is computed as the column-major product
// out^T[n,m] = op(b)^T · a^T, so the weight is cuBLASLt's "A" operand and the bias (length n)
// runs along D's rows, which is what the BIAS epilogue broadcasts.
// ---------------------------------------------------------------------------------------------

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

struct LtDevice {
  lt::Handle handle = nullptr;
  void* workspace = nullptr;
};

struct PlanKey {
  int dtype, trans_b, bias, gelu;
  int64_t m, n, k, batch, b_stride;
  int align_a, align_b, align_c;
  bool operator<(const PlanKey& o) const {
    return std::tie(dtype, trans_b, bias, gelu, m, n, k, batch, b_stride, align_a, align_b, align_c) <
           std::tie(o.dtype, o.trans_b, o.bias, o.gelu, o.m, o.n, o.k, o.batch, o.b_stride, o.align_a, o.align_b,
                    o.align_c);
  }
};

struct Plan {
  bool usable = false;
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout la = nullptr, lb = nullptr, lc = nullptr;
  lt::Algo algo{};
  size_t workspace = 0;
};

std::mutex lt_mutex;
std::map<int, LtDevice> lt_devices;
std::map<std::pair<int, PlanKey>, Plan> plans;

int alignment_of(const void* p) {
  uintptr_t address = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 1 && (address % align) != 0) align >>= 1;
  return align;
}

int lt_type(DType dtype) { return dtype == DType::bf16 ? lt::kR16BF : dtype == DType::f16 ? lt::kR16F : lt::kR32F; }

void lt_check(lt::Status status, const char* what) {
  if (status != lt::kSuccess) {
    const lt::Api* api = lt::api();
    fail("ERR_CUDA", std::string("cuBLASLt ") + what + " failed: " + (api ? api->status_name(status) : "?"));
  }
}

// Builds (once per shape) the descriptors and picks the heuristic's first algorithm.
Plan& plan_for(const MatmulArgs& a, int device, const lt::Api& api, LtDevice& dev) {
  const bool folded = a.b_batch_stride == 0;  // shared weight: fold the batch into m
  const bool gelu = a.epilogue == MatmulEpilogue::gelu_tanh;
  PlanKey key{static_cast<int>(a.out.dtype), a.trans_b ? 1 : 0, a.bias.data ? 1 : 0, gelu ? 1 : 0,
              folded ? a.m * a.batch : a.m, a.n, a.k, folded ? 1 : a.batch, a.b_batch_stride,
              alignment_of(a.b.data), alignment_of(a.a.data), alignment_of(a.out.data)};
  auto found = plans.find({device, key});
  if (found != plans.end()) return found->second;
  Plan plan;
  const int type = lt_type(a.out.dtype);
  const int64_t rows_m = key.m;
  lt_check(api.matmul_desc_create(&plan.desc, lt::kCompute32F, lt::kR32F), "MatmulDescCreate");
  int32_t trans_a = a.trans_b ? lt::kOpT : lt::kOpN, trans_b = lt::kOpN;
  lt_check(api.matmul_desc_set(plan.desc, lt::kDescTransA, &trans_a, sizeof(trans_a)), "set TRANSA");
  lt_check(api.matmul_desc_set(plan.desc, lt::kDescTransB, &trans_b, sizeof(trans_b)), "set TRANSB");
  // cuBLASLt's GELU epilogue is the tanh approximation, as the model's GELU(approximate='tanh').
  uint32_t epilogue = gelu ? (a.bias.data ? lt::kEpilogueGeluBias : lt::kEpilogueGelu)
                           : (a.bias.data ? lt::kEpilogueBias : lt::kEpilogueDefault);
  lt_check(api.matmul_desc_set(plan.desc, lt::kDescEpilogue, &epilogue, sizeof(epilogue)), "set EPILOGUE");
  if (a.bias.data) {
    int32_t bias_type = type;
    lt_check(api.matmul_desc_set(plan.desc, lt::kDescBiasDataType, &bias_type, sizeof(bias_type)), "set BIAS_DATA_TYPE");
    const void* bias_ptr = a.bias.data;  // the heuristic looks at the pointer's alignment
    lt_check(api.matmul_desc_set(plan.desc, lt::kDescBiasPointer, &bias_ptr, sizeof(bias_ptr)), "set BIAS_POINTER");
  }
  // cuBLASLt A = weight: [n,k] stored row-major is col-major k×n (op T); [k,n] is col-major n×k (op N).
  if (a.trans_b) {
    lt_check(api.layout_create(&plan.la, type, a.k, a.n, a.k), "layout A");
  } else {
    lt_check(api.layout_create(&plan.la, type, a.n, a.k, a.n), "layout A");
  }
  lt_check(api.layout_create(&plan.lb, type, a.k, rows_m, a.k), "layout B");
  lt_check(api.layout_create(&plan.lc, type, a.n, rows_m, a.n), "layout C");
  if (!folded && a.batch > 1) {
    int32_t count = static_cast<int32_t>(a.batch);
    int64_t stride_w = a.b_batch_stride, stride_x = a.m * a.k, stride_o = a.m * a.n;
    lt_check(api.layout_set(plan.la, lt::kLayoutBatchCount, &count, sizeof(count)), "batch A");
    lt_check(api.layout_set(plan.la, lt::kLayoutStridedBatchOffset, &stride_w, sizeof(stride_w)), "stride A");
    lt_check(api.layout_set(plan.lb, lt::kLayoutBatchCount, &count, sizeof(count)), "batch B");
    lt_check(api.layout_set(plan.lb, lt::kLayoutStridedBatchOffset, &stride_x, sizeof(stride_x)), "stride B");
    lt_check(api.layout_set(plan.lc, lt::kLayoutBatchCount, &count, sizeof(count)), "batch C");
    lt_check(api.layout_set(plan.lc, lt::kLayoutStridedBatchOffset, &stride_o, sizeof(stride_o)), "stride C");
  }
  lt::Preference pref = nullptr;
  lt_check(api.pref_create(&pref), "PreferenceCreate");
  uint64_t workspace = kWorkspaceBytes;
  uint32_t align_a = key.align_a, align_b = key.align_b, align_c = key.align_c;
  api.pref_set(pref, lt::kPrefMaxWorkspaceBytes, &workspace, sizeof(workspace));
  api.pref_set(pref, lt::kPrefMinAlignA, &align_a, sizeof(align_a));
  api.pref_set(pref, lt::kPrefMinAlignB, &align_b, sizeof(align_b));
  api.pref_set(pref, lt::kPrefMinAlignC, &align_c, sizeof(align_c));
  api.pref_set(pref, lt::kPrefMinAlignD, &align_c, sizeof(align_c));
  lt::HeuristicResult result{};
  int returned = 0;
  lt::Status status = api.heuristic(dev.handle, plan.desc, plan.la, plan.lb, plan.lc, plan.lc, pref, 1, &result, &returned);
  api.pref_destroy(pref);
  plan.usable = status == lt::kSuccess && returned > 0 && result.state == lt::kSuccess;
  plan.algo = result.algo;
  plan.workspace = result.workspace_size;
  return plans.emplace(std::make_pair(device, key), plan).first->second;
}

// Returns false when cuBLASLt cannot serve this call (then the fallback kernel runs).
bool matmul_cublaslt(const MatmulArgs& a) {
  const lt::Api* api = lt::api();
  if (api == nullptr) return false;
  const int device = a.out.device;
  std::lock_guard<std::mutex> lock(lt_mutex);
  LtDevice& dev = lt_devices[device];
  if (dev.handle == nullptr) {
    if (api->create(&dev.handle) != lt::kSuccess) return false;
    dev.workspace = alloc(device, kWorkspaceBytes);
  }
  Plan& plan = plan_for(a, device, *api, dev);
  if (!plan.usable) return false;
  if (a.bias.data) {
    const void* bias_ptr = a.bias.data;
    lt_check(api->matmul_desc_set(plan.desc, lt::kDescBiasPointer, &bias_ptr, sizeof(bias_ptr)), "set BIAS_POINTER");
  }
  const float alpha = a.alpha, beta = 0.0f;
  lt_check(api->matmul(dev.handle, plan.desc, &alpha, a.b.data, plan.la, a.a.data, plan.lb, &beta, a.out.data, plan.lc,
                       a.out.data, plan.lc, &plan.algo, dev.workspace, plan.workspace, stream(device)),
           "Matmul");
  return true;
}

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
  __shared__ __align__(32) T as[BM][BK + PAD];
  __shared__ __align__(32) T bs[BN][BK + PAD];
  __shared__ __align__(32) float cs[BM][BN + 4];
  const int64_t batch = blockIdx.z;
  a += batch * a_stride;
  b += batch * b_stride;
  out += batch * m * n;
  const int64_t row0 = blockIdx.y * (int64_t)BM, col0 = blockIdx.x * (int64_t)BN;
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
  __shared__ float as[BK][BM + 1];
  __shared__ float bs[BK][BN + 1];
  const int64_t batch = blockIdx.z;
  a += batch * a_stride;
  b += batch * b_stride;
  out += batch * m * n;
  const int64_t row0 = blockIdx.y * (int64_t)BM, col0 = blockIdx.x * (int64_t)BN;
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

void matmul_fallback(const MatmulArgs& a) {
  SV_CHECK(a.batch <= 65535, "ERR_SHAPE", "matmul: batch too large for the fallback kernel");
  dim3 grid(static_cast<unsigned>((a.n + BN - 1) / BN), static_cast<unsigned>((a.m + BM - 1) / BM),
            static_cast<unsigned>(a.batch));
  cudaStream_t s = stream_of(a.out);
  const bool gelu = a.epilogue == MatmulEpilogue::gelu_tanh;
  if (a.out.dtype == DType::f32) {
    gemm_f32_kernel<<<grid, 256, 0, s>>>(a.a.as<const float>(), a.b.as<const float>(),
                                         a.bias.data ? a.bias.as<const float>() : nullptr, a.out.as<float>(), a.m, a.n,
                                         a.k, a.a_batch_stride, a.b_batch_stride, a.trans_b, a.alpha, gelu);
  } else if (a.out.dtype == DType::bf16) {
    gemm_wmma_kernel<__nv_bfloat16><<<grid, 128, 0, s>>>(
        a.a.as<const __nv_bfloat16>(), a.b.as<const __nv_bfloat16>(),
        a.bias.data ? a.bias.as<const __nv_bfloat16>() : nullptr, a.out.as<__nv_bfloat16>(), a.m, a.n, a.k,
        a.a_batch_stride, a.b_batch_stride, a.trans_b, a.alpha, gelu);
  } else if (a.out.dtype == DType::f16) {
    gemm_wmma_kernel<__half><<<grid, 128, 0, s>>>(a.a.as<const __half>(), a.b.as<const __half>(),
                                                  a.bias.data ? a.bias.as<const __half>() : nullptr, a.out.as<__half>(),
                                                  a.m, a.n, a.k, a.a_batch_stride, a.b_batch_stride, a.trans_b, a.alpha,
                                                  gelu);
  } else {
    fail("ERR_DTYPE", std::string("matmul: CUDA computes on f32, bf16 or f16, got ") + dtype_name(a.out.dtype));
  }
  CUDA_CHECK_LAUNCH();
}

template <typename T>
__global__ void empty_product_kernel(const T* __restrict__ bias, T* __restrict__ out, int64_t rows, int64_t n, bool gelu) {
  const int64_t total = rows * n;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    float v = bias ? to_f32(bias[i % n]) : 0.0f;
    if (gelu) v = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    out[i] = from_f32<T>(v);
  }
}

void empty_product(const MatmulArgs& a) {
  const int64_t rows = a.batch * a.m;
  const bool gelu = a.epilogue == MatmulEpilogue::gelu_tanh;
  dispatch_float(a.out.dtype, "matmul", [&](auto t) {
    using T = decltype(t);
    empty_product_kernel<T><<<grid_for(rows * a.n, 256), 256, 0, stream_of(a.out)>>>(
        a.bias.data ? a.bias.as<const T>() : nullptr, a.out.as<T>(), rows, a.n, gelu);
    CUDA_CHECK_LAUNCH();
  });
}

bool fallback_forced() {
  const char* mode = std::getenv("STEPVIDEO_GEMM");
  return mode != nullptr && std::string(mode) == "fallback";
}

}  // namespace

void matmul(const MatmulArgs& args) {
  use_device(args.out.device);
  if (args.m == 0 || args.n == 0 || args.batch == 0) return;
  if (args.k == 0) {  // an empty product: out = epilogue(bias) (or zeros), as the CPU twin computes
    empty_product(args);
    return;
  }
  if (!fallback_forced() && matmul_cublaslt(args)) return;
  matmul_fallback(args);
}

// Which GEMM path the CUDA backend uses, for diagnostics and benchmark labels.
const char* gemm_backend() {
  if (fallback_forced()) return "fallback (forced by STEPVIDEO_GEMM)";
  const char* why = nullptr;
  return lt::api(&why) ? "cublaslt" : why;
}

}  // namespace sv::cuda
