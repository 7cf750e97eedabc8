// CUDA attention (native/attention.h).
//
// Two paths, chosen per call by attention() at the end of this file:
//  - the tensor-core path (attention_mma.cuh): FlashAttention-2 style, bf16/f16, head dims 64, 128,
//    256 and 512, every mask variant; the fast path the models use;
//  - attention_rowwise_kernel, the generic path: any head dim up to 512, every mask variant, f32 or
//    bf16/f16 storage. One warp owns one query row; each lane keeps D/32 elements of q and of the
//    output accumulator in registers, and the warp walks the visible keys with an online softmax
//    (running max and normaliser), so no N×N scores are ever stored. It is simple and exact, and it
//    is the twin the tensor-core path is checked against.
//  - the Hopper path (attention_sm90.cuh): FlashAttention-3 style (TMA, mbarriers, wgmma, warp
//    specialisation), bf16, head dim 128, non-causal with optional kv_len; sm_90a builds on
//    compute capability 9.0 only. Opt-in until validated on an H200 (the policy's hopper_in_auto).
// The device's kernel policy (native/kernel_policy.h) chooses: attention `generic` forces the generic
// path; `mma` (or `hopper`) forces that kernel and makes a call it cannot take an ERR_UNSUPPORTED
// error (tests use all three).
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "../native/attention.h"
#include "../native/kernel_policy.h"
#include "../native/storage.h"
#include "attention_mma.cuh"
#include "attention_sm90.cuh"
#include "common.cuh"

namespace sv::cuda {
namespace {

struct AttentionParams {
  int64_t heads, kv_heads, q_len, kv_len_max, head_dim;
  float scale;
  bool causal, alibi;
};

__device__ __forceinline__ float alibi_slope_device(int64_t head, int64_t heads) {
  int64_t n = 1;
  while (n * 2 <= heads) n *= 2;
  if (head < n) return exp2f(-8.0f * static_cast<float>(head + 1) / static_cast<float>(n));
  return exp2f(-4.0f * static_cast<float>(2 * (head - n) + 1) / static_cast<float>(n));
}

template <typename T, int PerLane>
__global__ void attention_rowwise_kernel(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                         T* __restrict__ out, const int32_t* __restrict__ kv_len, AttentionParams p,
                                         int64_t rows) {
  const int lane = threadIdx.x & 31;
  const int64_t row = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;  // one warp per (b, h, i)
  if (row >= rows) return;
  const int64_t i = row % p.q_len, h = (row / p.q_len) % p.heads, b = row / (p.q_len * p.heads);
  const int64_t hk = h / (p.heads / p.kv_heads);
  const int64_t D = p.head_dim, offset = p.kv_len_max - p.q_len;
  int64_t last = p.kv_len_max;
  if (kv_len) last = min(last, static_cast<int64_t>(max(kv_len[b], 0)));
  if (p.causal) last = min(last, i + offset + 1);
  const float slope = p.alibi ? alibi_slope_device(h, p.heads) : 0.0f;

  float qr[PerLane], acc[PerLane];
  const T* qi = q + ((b * p.heads + h) * p.q_len + i) * D;
#pragma unroll
  for (int e = 0; e < PerLane; e++) {
    const int64_t d = e * 32 + lane;
    qr[e] = d < D ? to_f32(qi[d]) * p.scale : 0.0f;
    acc[e] = 0.0f;
  }
  const T* kb = k + (b * p.kv_heads + hk) * p.kv_len_max * D;
  const T* vb = v + (b * p.kv_heads + hk) * p.kv_len_max * D;
  float running_max = -FLT_MAX, normaliser = 0.0f;
  for (int64_t j = 0; j < last; j++) {
    const T* kj = kb + j * D;
    float dot = 0.0f;
#pragma unroll
    for (int e = 0; e < PerLane; e++) {
      const int64_t d = e * 32 + lane;
      if (d < D) dot += qr[e] * to_f32(kj[d]);
    }
    for (int o = 16; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);
    if (p.alibi) dot -= slope * sqrtf(static_cast<float>(i + offset - j));
    const float new_max = fmaxf(running_max, dot);
    const float correction = __expf(running_max - new_max);
    const float weight = __expf(dot - new_max);
    normaliser = normaliser * correction + weight;
    const T* vj = vb + j * D;
#pragma unroll
    for (int e = 0; e < PerLane; e++) {
      const int64_t d = e * 32 + lane;
      acc[e] = acc[e] * correction + (d < D ? weight * to_f32(vj[d]) : 0.0f);
    }
    running_max = new_max;
  }
  T* o = out + ((b * p.q_len + i) * p.heads + h) * D;
  const float inv = normaliser > 0.0f ? 1.0f / normaliser : 0.0f;
#pragma unroll
  for (int e = 0; e < PerLane; e++) {
    const int64_t d = e * 32 + lane;
    if (d < D) o[d] = from_f32<T>(acc[e] * inv);
  }
}

template <typename T, int PerLane>
void launch_rowwise(const ExecContext& ctx, const AttentionArgs& a, const AttentionParams& p) {
  const int64_t rows = a.batch * a.heads * a.q_len;
  const int threads = 128;  // 4 rows per block
  const int64_t blocks = (rows * 32 + threads - 1) / threads;
  SV_CHECK(blocks <= 2147483647LL, "ERR_SHAPE", "attention: problem too large for one launch");
  launch(SV_HERE, attention_rowwise_kernel<T, PerLane>, static_cast<unsigned>(blocks), threads, 0, work_stream(ctx),
         a.q.as<const T>(), a.k.as<const T>(), a.v.as<const T>(), a.out.as<T>(),
         a.kv_len.data ? a.kv_len.as<const int32_t>() : nullptr, p, rows);
}

}  // namespace

void attention_rowwise(const ExecContext& ctx, const AttentionArgs& a) {
  use_device(ctx.device);
  if (a.batch * a.heads * a.q_len == 0) return;
  SV_CHECK(a.head_dim <= 512, "ERR_UNSUPPORTED", "attention: head dim " + std::to_string(a.head_dim) + " exceeds 512");
  AttentionParams p{a.heads, a.kv_heads, a.q_len, a.kv_len_max, a.head_dim, a.scale, a.causal, a.alibi_sqrt};
  dispatch_float(a.out.dtype, "attention", [&](auto t) {
    using T = decltype(t);
    if (a.head_dim <= 32) {
      launch_rowwise<T, 1>(ctx, a, p);
    } else if (a.head_dim <= 64) {
      launch_rowwise<T, 2>(ctx, a, p);
    } else if (a.head_dim <= 128) {
      launch_rowwise<T, 4>(ctx, a, p);
    } else if (a.head_dim <= 256) {
      launch_rowwise<T, 8>(ctx, a, p);
    } else {
      launch_rowwise<T, 16>(ctx, a, p);
    }
  });
}

// ---- the tensor-core path ----
namespace {

// The tile shapes per head dim, in one place.
// 64 and 128: every warp holds its rows' whole head dim. 256 and 512: the head dim is split over
// 2 and 4 warps so each keeps a 128-column slice of O in registers; the key tile of 512 is 32 so
// two stages fit the 163 KB an sm_80 block may use. Calls fn(Config{}); false for other dims.
template <typename Fn>
bool with_tiles(int64_t head_dim, Fn&& fn) {
  using mma_attention::Config;
  switch (head_dim) {
    case 64: fn(Config<64, 4, 1, 64, 2>{}); return true;
    case 128: fn(Config<128, 8, 1, 64, 2>{}); return true;
    case 256: fn(Config<256, 4, 2, 64, 2>{}); return true;
    case 512: fn(Config<512, 2, 4, 32, 2>{}); return true;
    default: return false;
  }
}

int mma_smem_bytes(int64_t head_dim) {
  int bytes = 0;
  with_tiles(head_dim, [&](auto cfg) { bytes = decltype(cfg)::kSmemBytes; });
  return bytes;
}

template <typename T, bool kAlibi>
void launch_mma(const ExecContext& ctx, const AttentionArgs& a, const mma_attention::Params& p) {
  const bool known = with_tiles(a.head_dim, [&](auto cfg) {
    using Cfg = decltype(cfg);
    auto kernel = mma_attention::flash_attention_kernel<T, Cfg, kAlibi>;
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::kSmemBytes));
    const dim3 grid(static_cast<unsigned>((a.q_len + Cfg::kBlockM - 1) / Cfg::kBlockM), static_cast<unsigned>(a.heads),
                    static_cast<unsigned>(a.batch));
    launch(SV_HERE, kernel, grid, Cfg::kThreads, Cfg::kSmemBytes, work_stream(ctx), a.q.as<const T>(),
           a.k.as<const T>(), a.v.as<const T>(), a.out.as<T>(), a.kv_len.data ? a.kv_len.as<const int32_t>() : nullptr,
           p);
  });
  SV_CHECK(known, "ERR_UNSUPPORTED", "attention: no tensor-core kernel for head dim " + std::to_string(a.head_dim));
}

// Why the tensor-core path cannot take this call ("" when it can).
std::string mma_unsupported_reason(const AttentionArgs& a) {
  if (a.out.dtype != DType::bf16 && a.out.dtype != DType::f16) return std::string("dtype ") + dtype_name(a.out.dtype);
  if (mma_smem_bytes(a.head_dim) == 0) return "head dim " + std::to_string(a.head_dim);
  if (a.alibi_sqrt && !a.causal) return "ALiBi without causal";
  if (a.heads > 65535 || a.batch > 65535) return "more than 65535 heads or batch items";
  if (a.q_len > INT_MAX / 2 || a.kv_len_max > INT_MAX / 2) return "sequence longer than 2^30";
  if (!aligned16(a.q) || !aligned16(a.k) || !aligned16(a.v) || !aligned16(a.out)) return "tensor not 16-byte aligned";
  int major = 0, smem_optin = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, a.out.device));
  CUDA_CHECK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, a.out.device));
  if (major < 8) return "compute capability below 8.0";
  if (smem_optin < mma_smem_bytes(a.head_dim)) {
    return "needs " + std::to_string(mma_smem_bytes(a.head_dim)) + " bytes of shared memory per block, device allows " +
           std::to_string(smem_optin);
  }
  return "";
}

// ---- the Hopper path ----

// The Hopper kernel was written in a session without a GPU. Automatic dispatch leaves it alone
// until it has run: the policy's hopper_in_auto (lib/kernel-policy.ts) becomes true by default once
// test/gpu/attention-sm90.test.ts passes on the H200 and benchmarks/attention/attention.mjs shows it
// faster than the mma kernel at every DiT size (and the 'automatic dispatch' expectation in that
// test file is updated). Its schedule and ring depth come from the policy too (the benchmark's knobs).
struct HopperVariant {
  HopperSchedule schedule = HopperSchedule::pingpong;
  int stages = 2;
};

uint32_t hopper_smem_bytes(int stages) {
  return stages == 2 ? sm90_attention::SmemLayout<2>::kBytes : sm90_attention::SmemLayout<3>::kBytes;
}

// cuTensorMapEncodeTiled from the driver, looked up once through the runtime (cudart is static and
// the addon does not link libcuda). Null when the driver does not offer it.
using TensorMapEncoder = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                      const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                      CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
TensorMapEncoder tensor_map_encoder() {
  static const TensorMapEncoder encoder = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    const cudaError_t status =
        cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found);
    if (status != cudaSuccess || found != cudaDriverEntryPointSuccess) {
      cudaGetLastError();  // not sticky; clear it so the next checked call does not report it
      return static_cast<TensorMapEncoder>(nullptr);
    }
    return reinterpret_cast<TensorMapEncoder>(fn);
  }();
  return encoder;
}

// Why the Hopper kernel cannot take this call ("" when it can).
std::string hopper_unsupported_reason(const AttentionArgs& a, const HopperVariant& variant) {
#ifndef SV_CUDA_ARCHS
#define SV_CUDA_ARCHS ""
#endif
  if (std::strstr(SV_CUDA_ARCHS, "90a") == nullptr) return "the addon was built without sm_90a";
  if (a.out.dtype != DType::bf16) return std::string("dtype ") + dtype_name(a.out.dtype) + " (bf16 only)";
  if (a.head_dim != sm90_attention::kHeadDim) return "head dim " + std::to_string(a.head_dim) + " (128 only)";
  if (a.causal || a.alibi_sqrt) return "causal or ALiBi masks";
  if (!(a.scale > 0.0f) || !std::isfinite(a.scale)) return "softmax scale " + std::to_string(a.scale) + " (must be > 0)";
  if (a.kv_len_max == 0) return "no keys";
  if (a.heads > 65535 || a.batch > 65535) return "more than 65535 heads or batch items";
  if (a.q_len > INT_MAX - 256 || a.kv_len_max > INT_MAX - 256) return "sequence longer than 2^31 - 256";
  if (!aligned16(a.q) || !aligned16(a.k) || !aligned16(a.v) || !aligned16(a.out)) return "tensor not 16-byte aligned";
  int major = 0, minor = 0, smem_optin = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, a.out.device));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, a.out.device));
  CUDA_CHECK(cudaDeviceGetAttribute(&smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, a.out.device));
  if (major != 9 || minor != 0) return "compute capability " + std::to_string(major) + "." + std::to_string(minor) + " (9.0 only)";
  if (smem_optin < static_cast<int>(hopper_smem_bytes(variant.stages))) {
    return "needs " + std::to_string(hopper_smem_bytes(variant.stages)) + " bytes of shared memory per block, device allows " +
           std::to_string(smem_optin);
  }
  if (tensor_map_encoder() == nullptr) return "the driver offers no cuTensorMapEncodeTiled";
  return "";
}

// A [slabs = B·heads, rows, 128] bf16 tensor as the 3-D tensor map {128, rows, slabs} (innermost
// first), box {64, 128, 1}, 128-byte swizzle, out-of-bounds elements read as zeros.
CUtensorMap head_major_tensor_map(const TensorRef& t, int64_t rows, int64_t slabs, const char* what) {
  using sm90_attention::kBlockN;
  using sm90_attention::kHeadDim;
  using sm90_attention::kPanelCols;
  CUtensorMap map;
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(kHeadDim), static_cast<cuuint64_t>(rows), static_cast<cuuint64_t>(slabs)};
  const cuuint64_t strides[2] = {kHeadDim * 2ull, static_cast<cuuint64_t>(rows) * kHeadDim * 2ull};  // bytes, dims 1 and 2
  const cuuint32_t box[3] = {kPanelCols, kBlockN, 1};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult status = tensor_map_encoder()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, t.data, dims, strides, box,
                                               element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  SV_CHECK(status == CUDA_SUCCESS, "ERR_CUDA",
           std::string("attention: cuTensorMapEncodeTiled failed (CUresult ") + std::to_string(static_cast<int>(status)) +
               ") for " + what + " " + t.shape_string());
  return map;
}

// The Hopper kernel's hang report (attention_sm90.cuh): page-locked host memory mapped into every
// device, so it survives the trap that ends a hung launch; the runtime's fault message includes it.
sm90_attention::HangReport* hang_report = nullptr;
int hang_report_stages = 2;  // the ring depth of the last launch, to name the barrier

std::string explain_hang() {
  const sm90_attention::HangReport* r = hang_report;
  if (r == nullptr || r->hit == 0) return "";
  const int s = hang_report_stages, i = static_cast<int>(r->barrier);
  std::string name = "mbarrier #" + std::to_string(i);
  if (i == 0) {
    name = "full_q";
  } else if (i <= 4 * s) {
    static const char* const kinds[] = {"full_k", "full_v", "empty_k", "empty_v"};
    name = std::string(kinds[(i - 1) / s]) + "[" + std::to_string((i - 1) % s) + "]";
  } else if (i <= 4 * s + 2) {
    name = "turn[" + std::to_string(i - 4 * s - 1) + "]";
  }
  return "the Hopper attention kernel trapped after waiting " + std::to_string(sm90_attention::kHangNanoseconds / 1000000000) +
         " s on mbarrier " + name + " (parity " + std::to_string(r->parity) + ") in block (" + std::to_string(r->block_x) +
         ", " + std::to_string(r->block_y) + ", " + std::to_string(r->block_z) + "), thread " + std::to_string(r->thread) +
         ": a hang in its producer/consumer protocol";
}

void prepare_hang_report(int device) {
  static std::mutex mutex;
  static bool prepared[kMaxCudaDevices] = {};
  std::lock_guard<std::mutex> lock(mutex);
  if (prepared[device]) return;
  if (hang_report == nullptr) {
    void* host = nullptr;
    CUDA_CHECK(cudaHostAlloc(&host, sizeof(sm90_attention::HangReport), cudaHostAllocMapped | cudaHostAllocPortable));
    std::memset(host, 0, sizeof(sm90_attention::HangReport));
    hang_report = static_cast<sm90_attention::HangReport*>(host);
    add_fault_explainer(&explain_hang);
  }
  void* mapped = nullptr;
  CUDA_CHECK(cudaHostGetDevicePointer(&mapped, hang_report, 0));
  CUDA_CHECK(cudaMemcpyToSymbol(sm90_attention::hang_report, &mapped, sizeof(mapped)));
  prepared[device] = true;
}

template <int Stages, bool kOverlap, bool kPingPong>
void launch_hopper_variant(const ExecContext& ctx, const AttentionArgs& a, const CUtensorMap& q_map, const CUtensorMap& k_map,
                           const CUtensorMap& v_map, const sm90_attention::Params& p) {
  auto kernel = sm90_attention::attention_sm90_kernel<Stages, kOverlap, kPingPong>;
  constexpr uint32_t smem = sm90_attention::SmemLayout<Stages>::kBytes;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  const int64_t m_blocks = (a.q_len + sm90_attention::kBlockM - 1) / sm90_attention::kBlockM;
  const dim3 grid(static_cast<unsigned>(m_blocks), static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
  launch(SV_HERE, kernel, grid, sm90_attention::kThreads, smem, work_stream(ctx), q_map, k_map, v_map, p);
}

void launch_hopper(const ExecContext& ctx, const AttentionArgs& a, const HopperVariant& variant) {
  prepare_hang_report(a.out.device);
  hang_report_stages = variant.stages;
  const CUtensorMap q_map = head_major_tensor_map(a.q, a.q_len, a.batch * a.heads, "q");
  const CUtensorMap k_map = head_major_tensor_map(a.k, a.kv_len_max, a.batch * a.kv_heads, "k");
  const CUtensorMap v_map = head_major_tensor_map(a.v, a.kv_len_max, a.batch * a.kv_heads, "v");
  sm90_attention::Params p{};
  p.q_len = static_cast<int>(a.q_len);
  p.kv_len_max = static_cast<int>(a.kv_len_max);
  p.heads = static_cast<int>(a.heads);
  p.group = static_cast<int>(a.heads / a.kv_heads);
  p.scale_log2 = a.scale * 1.4426950408889634f;
  p.kv_len = a.kv_len.data ? a.kv_len.as<const int32_t>() : nullptr;
  p.out = a.out.as<__nv_bfloat16>();
  const bool three = variant.stages == 3;
  switch (variant.schedule) {
    case HopperSchedule::serial:
      three ? launch_hopper_variant<3, false, false>(ctx, a, q_map, k_map, v_map, p)
            : launch_hopper_variant<2, false, false>(ctx, a, q_map, k_map, v_map, p);
      break;
    case HopperSchedule::overlap:
      three ? launch_hopper_variant<3, true, false>(ctx, a, q_map, k_map, v_map, p)
            : launch_hopper_variant<2, true, false>(ctx, a, q_map, k_map, v_map, p);
      break;
    case HopperSchedule::pingpong:
      three ? launch_hopper_variant<3, true, true>(ctx, a, q_map, k_map, v_map, p)
            : launch_hopper_variant<2, true, true>(ctx, a, q_map, k_map, v_map, p);
      break;
  }
}

// ---- dispatch ----

enum class AttentionPath { generic, mma, hopper };

struct PathChoice {
  AttentionPath path;
  HopperVariant variant;  // meaningful only for the Hopper path
};

// The kernel attention() runs for this call; a forced kernel that cannot take it is ERR_UNSUPPORTED.
PathChoice choose_path(const ExecContext& ctx, const AttentionArgs& a) {
  const KernelPolicy& policy = ctx.policy;
  const AttentionChoice mode = policy.attention;
  if (mode == AttentionChoice::generic) return {AttentionPath::generic, {}};
  use_device(ctx.device);
  const HopperVariant variant{policy.hopper_schedule, policy.hopper_stages};
  if (mode == AttentionChoice::hopper) {
    const std::string why_not = hopper_unsupported_reason(a, variant);
    SV_CHECK(why_not.empty(), "ERR_UNSUPPORTED",
             "attention: the kernel policy forces the Hopper kernel, but the Hopper kernel does not support this call (" + why_not +
                 "; q " + a.q.shape_string() + ")");
    return {AttentionPath::hopper, variant};
  }
  if (mode == AttentionChoice::automatic && policy.hopper_in_auto && hopper_unsupported_reason(a, variant).empty()) {
    return {AttentionPath::hopper, variant};
  }
  const std::string why_not = mma_unsupported_reason(a);
  if (!why_not.empty()) {
    SV_CHECK(mode != AttentionChoice::mma, "ERR_UNSUPPORTED",
             "attention: the kernel policy forces mma, but the tensor-core kernel does not support this call (" + why_not +
                 "; q " + a.q.shape_string() + ")");
    return {AttentionPath::generic, {}};
  }
  return {AttentionPath::mma, {}};
}

}  // namespace

const char* attention_kernel_name(const ExecContext& ctx, const AttentionArgs& a) {
  switch (choose_path(ctx, a).path) {
    case AttentionPath::generic: return "generic";
    case AttentionPath::mma: return "mma";
    case AttentionPath::hopper: return "hopper";
  }
  return "?";
}

void attention(const ExecContext& ctx, const AttentionArgs& a) {
  const PathChoice choice = choose_path(ctx, a);
  if (choice.path == AttentionPath::generic) return attention_rowwise(ctx, a);
  if (a.batch * a.heads * a.q_len == 0) return;
  if (choice.path == AttentionPath::hopper) return launch_hopper(ctx, a, choice.variant);
  mma_attention::Params p{};
  p.heads = static_cast<int>(a.heads);
  p.group = static_cast<int>(a.heads / a.kv_heads);
  p.q_len = static_cast<int>(a.q_len);
  p.kv_len_max = static_cast<int>(a.kv_len_max);
  p.offset = static_cast<int>(a.kv_len_max - a.q_len);
  p.scale_log2 = a.scale * 1.4426950408889634f;
  p.causal = a.causal;
  if (a.out.dtype == DType::bf16) {
    a.alibi_sqrt ? launch_mma<__nv_bfloat16, true>(ctx, a, p) : launch_mma<__nv_bfloat16, false>(ctx, a, p);
  } else {
    a.alibi_sqrt ? launch_mma<__half, true>(ctx, a, p) : launch_mma<__half, false>(ctx, a, p);
  }
}

}  // namespace sv::cuda
