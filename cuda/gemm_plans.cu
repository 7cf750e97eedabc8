// The cuBLASLt plans of the CUDA GEMMs (cuda/gemm_common.cuh): each device's handle and plan
// cache, the heuristic's candidates, autotuning by CUDA events, and the report gemmPlans() reads.
#include <string>

#include "../native/linear.h"
#include "gemm_common.cuh"

namespace sv::cuda {
namespace {

BlasLt states[kMaxCudaDevices];

const char* kind_name(PlanKind kind) {
  return kind == PlanKind::matmul ? "matmul" : kind == PlanKind::residual ? "residual" : "fp8";
}

// Reads finished timings (never blocks): keeps the fastest candidate that launched.
void collect_timings(Plan& plan) {
  if (plan.ends.empty()) return;
  cudaError_t status = cudaEventQuery(plan.ends.back());
  if (status == cudaErrorNotReady) {
    cudaGetLastError();
    return;
  }
  float best = -1.0f;
  for (size_t i = 0; i < plan.starts.size(); i++) {
    float ms = -1.0f;
    if (status == cudaSuccess && plan.launched[i] && cudaEventElapsedTime(&ms, plan.starts[i], plan.ends[i]) != cudaSuccess) {
      cudaGetLastError();
      ms = -1.0f;
    }
    plan.candidate_ms[i] = ms;
    if (ms >= 0.0f && (best < 0.0f || ms < best)) {
      best = ms;
      plan.chosen = static_cast<int>(i);
    }
  }
  for (size_t i = 0; i < plan.starts.size(); i++) {
    cudaEventDestroy(plan.starts[i]);
    cudaEventDestroy(plan.ends[i]);
  }
  plan.starts.clear();
  plan.ends.clear();
  plan.launched.clear();
  plan.tuned = true;
}

// One cublasLtMatmul with the plan's descriptors and candidate `index`.
lt::Status launch_candidate(const Plan& plan, const LtCall& call, int index, const void* alpha, const void* a,
                            const void* b, const void* beta, const void* c, void* d) {
  const Candidate& candidate = plan.candidates[index];
  return call.api->matmul(call.state->handle, plan.desc, alpha, a, plan.la, b, plan.lb, beta, c, plan.lc, d, plan.ld,
                          &candidate.algo, call.workspace, candidate.workspace, call.stream);
}

}  // namespace

std::mutex& lt_mutex() {
  static std::mutex mutex;
  return mutex;
}

BlasLt* blaslt_of(int device) {
  SV_CHECK(device >= 0 && device < kMaxCudaDevices, "ERR_DEVICE", "no CUDA device cuda:" + std::to_string(device));
  states[device].device = device;
  return &states[device];
}

// The handle is kept only when creation succeeded (a failed create may leave garbage in its
// output); the workspace comes from the context (gemm_workspace: nullptr while it cannot be
// allocated, and asked for again on the next call), so neither failure fails the op.
bool lt_begin(const ExecContext& ctx, LtCall* call) {
  if (ctx.policy.gemm == GemmChoice::fallback) return false;
  const lt::Api* api = lt::api();
  if (api == nullptr || ctx.blaslt == nullptr) return false;
  BlasLt& state = *ctx.blaslt;
  if (state.handle == nullptr) {
    lt::Handle handle = nullptr;
    if (api->create(&handle) != lt::kSuccess) return false;
    state.handle = handle;
  }
  void* workspace = gemm_workspace(ctx, kWorkspaceBytes);
  if (workspace == nullptr) return false;
  *call = LtCall{api, &state, workspace, work_stream(ctx), ctx.policy.gemm_autotune};
  return true;
}

int alignment_of(const void* p) {
  uintptr_t address = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 1 && (address % align) != 0) align >>= 1;
  return align;
}

int alignment_of(const void* base, int64_t stride_bytes) {
  int align = alignment_of(base);
  while (align > 1 && stride_bytes % align != 0) align >>= 1;
  return align;
}

int lt_type(DType dtype) { return dtype == DType::bf16 ? lt::kR16BF : dtype == DType::f16 ? lt::kR16F : lt::kR32F; }

void lt_check(lt::Status status, const char* what) {
  if (status != lt::kSuccess) {
    const lt::Api* api = lt::api();
    fail("ERR_CUDA", std::string("cuBLASLt ") + what + " failed: " + (api ? api->status_name(status) : "?"));
  }
}

// cuBLASLt's heuristic looks at the alignment of A, B, C and D only; the kernels it picks may read
// the bias, a device alpha vector or the FP8 scale vectors 16 bytes at a time. A fused epilogue is
// used only when those pointers are 16-byte aligned (every per-group pointer, for vectors indexed
// by group); otherwise the call takes the unfused path.
bool vector_aligned(const void* base, int64_t stride_bytes) {
  return base == nullptr || alignment_of(base, stride_bytes) >= 16;
}

// Asks the heuristic for the plan's candidates (up to 8, best first). The descriptors must be
// complete, scale and bias pointers included: the heuristic looks at their alignment.
void choose_candidates(Plan& plan, const LtCall& call) {
  const lt::Api& api = *call.api;
  lt::Preference pref = nullptr;
  lt_check(api.pref_create(&pref), "PreferenceCreate");
  uint64_t workspace = kWorkspaceBytes;
  uint32_t align_a = plan.key.align_a, align_b = plan.key.align_b, align_c = plan.key.align_c,
           align_d = plan.key.align_d;
  api.pref_set(pref, lt::kPrefMaxWorkspaceBytes, &workspace, sizeof(workspace));
  api.pref_set(pref, lt::kPrefMinAlignA, &align_a, sizeof(align_a));
  api.pref_set(pref, lt::kPrefMinAlignB, &align_b, sizeof(align_b));
  api.pref_set(pref, lt::kPrefMinAlignC, &align_c, sizeof(align_c));
  api.pref_set(pref, lt::kPrefMinAlignD, &align_d, sizeof(align_d));
  lt::HeuristicResult results[kMaxCandidates] = {};
  int returned = 0;
  // Always the full list: without autotuning the first (the heuristic's pick) runs, and a plan made
  // while autotuning was off can still be tuned once it is turned on.
  lt::Status status = api.heuristic(call.state->handle, plan.desc, plan.la, plan.lb, plan.lc, plan.ld, pref, kMaxCandidates,
                                    results, &returned);
  api.pref_destroy(pref);
  if (status != lt::kSuccess) returned = 0;
  for (int i = 0; i < returned && i < kMaxCandidates; i++) {
    if (results[i].state == lt::kSuccess) plan.candidates.push_back(Candidate{results[i].algo, results[i].workspace_size});
  }
  plan.usable = !plan.candidates.empty();
  plan.candidate_ms.assign(plan.candidates.size(), -1.0f);
}

Plan* find_plan(BlasLt& state, const PlanKey& key) {
  auto found = state.plans.find(key);
  return found == state.plans.end() ? nullptr : &found->second;
}

Plan& new_plan(BlasLt& state, const PlanKey& key) {
  Plan& plan = state.plans[key];
  plan.key = key;
  return plan;
}

// Runs the plan: times the candidates on first use (they write d, which the real run below
// overwrites; C is never D here), then the chosen algorithm.
void run_plan(Plan& plan, const LtCall& call, const void* alpha, const void* a, const void* b, const void* beta,
              const void* c, void* d) {
  // Opt-in (the policy's gemm_autotune) until a GPU run has validated it (test/gpu/dit-perf.test.ts);
  // then make it the default.
  const bool autotune = call.autotune;
  cudaStream_t s = call.stream;
  collect_timings(plan);
  if (autotune && !plan.tuned && plan.starts.empty() && plan.candidates.size() > 1) {
    const size_t count = plan.candidates.size();
    std::vector<cudaEvent_t> starts(count, nullptr), ends(count, nullptr);
    std::vector<bool> launched(count, false);
    try {
      for (size_t i = 0; i < count; i++) {
        CUDA_CHECK(cudaEventCreate(&starts[i]));
        CUDA_CHECK(cudaEventCreate(&ends[i]));
      }
      for (size_t i = 0; i < count; i++) {
        CUDA_CHECK(cudaEventRecord(starts[i], s));
        // A candidate that refuses to launch is simply not a candidate (its time stays -1).
        launched[i] = launch_candidate(plan, call, static_cast<int>(i), alpha, a, b, beta, c, d) == lt::kSuccess;
        CUDA_CHECK(cudaEventRecord(ends[i], s));
      }
    } catch (...) {
      for (size_t i = 0; i < count; i++) {
        if (starts[i]) cudaEventDestroy(starts[i]);
        if (ends[i]) cudaEventDestroy(ends[i]);
      }
      throw;
    }
    plan.starts = std::move(starts);
    plan.ends = std::move(ends);
    plan.launched = std::move(launched);
  }
  const int index = autotune ? plan.chosen : 0;
  lt_check(launch_candidate(plan, call, index, alpha, a, b, beta, c, d), "Matmul");
}

std::vector<GemmPlanInfo> gemm_plans() {
  std::lock_guard<std::mutex> lock(lt_mutex());
  std::vector<GemmPlanInfo> result;
  for (BlasLt& state : states) {
   for (auto& [key, plan] : state.plans) {
    collect_timings(plan);
    GemmPlanInfo info;
    info.kind = kind_name(static_cast<PlanKind>(plan.key.kind));
    info.device = state.device;
    info.m = plan.key.m;
    info.n = plan.key.n;
    info.k = plan.key.k;
    info.batch = plan.key.batch;
    info.candidates = static_cast<int>(plan.candidates.size());
    info.chosen = plan.chosen;
    info.tuned = plan.tuned;
    info.candidate_ms = plan.candidate_ms;
    result.push_back(info);
   }
  }
  return result;
}

}  // namespace sv::cuda
