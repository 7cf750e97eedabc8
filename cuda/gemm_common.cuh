// What the GEMM files share (cuda/gemm.cu, gemm_fp8.cu, gemm_plans.cu, gemm_fallback.cu): the
// cuBLASLt plans and calls, and the own kernels' entry points.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "../native/kernels.h"
#include "common.cuh"
#include "cublaslt.h"

namespace sv::cuda {

// ---------------------------------------------------------------------------------------------
// cuBLASLt path. Row-major out[m,n] = a[m,k]·op(b) is computed as the column-major product
// out^T[n,m] = op(b)^T · a^T, so the weight is cuBLASLt's "A" operand and the bias (length n)
// runs along D's rows, which is what the BIAS epilogue broadcasts. Three kinds of plans share
// this layer: plain matmuls, the gated-residual linear (alpha a device vector = the gate row,
// beta = 1 on C = the residual) and the FP8 linear (e4m3 A and B, one f32 scale per row of each).
//
// Autotuning (opt-in: STEPVIDEO_GEMM_AUTOTUNE=1): a plan asks the heuristic for up to 8
// algorithms. On its first use each candidate runs once between CUDA events, before the real
// product (which then overwrites the output); a later use reads the events once the stream has
// passed them, without ever blocking the host, and keeps the fastest algorithm from then on.
// ---------------------------------------------------------------------------------------------

constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr int kMaxCandidates = 8;

enum class PlanKind : int { matmul = 0, residual = 1, fp8 = 2 };

struct PlanKey {
  int kind, dtype, trans_b, bias, gelu, gated;
  int64_t m, n, k, batch, b_stride;
  int align_a, align_b, align_c, align_d;
  bool operator<(const PlanKey& o) const {
    return std::tie(kind, dtype, trans_b, bias, gelu, gated, m, n, k, batch, b_stride, align_a, align_b, align_c,
                    align_d) < std::tie(o.kind, o.dtype, o.trans_b, o.bias, o.gelu, o.gated, o.m, o.n, o.k, o.batch,
                                        o.b_stride, o.align_a, o.align_b, o.align_c, o.align_d);
  }
};

struct Candidate {
  lt::Algo algo{};
  size_t workspace = 0;
};

struct Plan {
  bool usable = false;
  PlanKey key{};
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout la = nullptr, lb = nullptr, lc = nullptr, ld = nullptr;
  std::vector<Candidate> candidates;
  int chosen = 0;
  bool tuned = false;
  // Timing in flight: one start/end event pair per candidate (empty when none is pending).
  std::vector<cudaEvent_t> starts, ends;
  std::vector<bool> launched;
  std::vector<float> candidate_ms;
};

// A device's cuBLASLt state, shared by the device's contexts (ExecContext::blaslt): the handle,
// made on the first GEMM, and the plans made so far.
struct BlasLt {
  int device = 0;
  lt::Handle handle = nullptr;
  std::map<PlanKey, Plan> plans;
};

// Held while a GEMM uses cuBLASLt state and while gemmPlans() reads it.
std::mutex& lt_mutex();

// What one cuBLASLt call takes from its context.
struct LtCall {
  const lt::Api* api = nullptr;
  BlasLt* state = nullptr;
  void* workspace = nullptr;
  cudaStream_t stream = nullptr;
  bool autotune = false;  // the policy's gemm_autotune
};
// Prepares a cuBLASLt call on `ctx` (lt_mutex held): false when cuBLASLt cannot serve it (not
// loaded, the policy forces the own kernel, or no handle or workspace can be made now), and the
// own kernel runs instead.
bool lt_begin(const ExecContext& ctx, LtCall* call);

int alignment_of(const void* p);
// Alignment that holds for base + i·stride_bytes for every i (per-group pointers of one plan).
int alignment_of(const void* base, int64_t stride_bytes);
// Whether a vector read by a fused epilogue (bias, alpha vector, FP8 scales) may be given to it.
bool vector_aligned(const void* base, int64_t stride_bytes = 0);
int lt_type(DType dtype);
void lt_check(lt::Status status, const char* what);

Plan* find_plan(BlasLt& state, const PlanKey& key);
Plan& new_plan(BlasLt& state, const PlanKey& key);
// Asks the heuristic for the plan's candidates; the descriptors must be complete.
void choose_candidates(Plan& plan, const LtCall& call);
// Runs the plan on the call's stream (timing the candidates first when autotuning).
void run_plan(Plan& plan, const LtCall& call, const void* alpha, const void* a, const void* b, const void* beta,
              const void* c, void* d);

// The own kernels (cuda/gemm_fallback.cu).
void matmul_fallback(const ExecContext& ctx, const MatmulArgs& a);
// k == 0: out = epilogue(bias), or zeros.
void empty_product(const ExecContext& ctx, const MatmulArgs& a);

}  // namespace sv::cuda
