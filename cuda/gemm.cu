// GEMM for the CUDA backend: out[b] = alpha · a[b] · op(b[b]) + bias (then optionally GELU-tanh),
// row-major, f32 accumulate. First choice is cuBLASLt (loaded at run time, algorithms autotuned per
// shape, bias and GELU fused in its epilogue). Where cuBLASLt is absent or has no algorithm, an
// own kernel runs instead: WMMA tensor cores for bf16/f16, a tiled SIMT kernel for f32.
// STEPVIDEO_GEMM=fallback forces it. Also here: the gated-residual linear (residual add in the
// GEMM epilogue) and the e4m3 FP8 GEMM with per-channel and per-row scales (native/fp8.h).
#include <dlfcn.h>
#include <glob.h>
#include <mma.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "../native/environment.h"
#include "../native/fp8.h"
#include "../native/kernels.h"
#include "../native/linear.h"
#include "../native/kernel_policy.h"
#include "../native/norm.h"
#include "../native/storage.h"
#include "common.cuh"
#include "cublaslt.h"

namespace sv::cuda {

// ---------------------------------------------------------------------------------------------
// cuBLASLt loader
// ---------------------------------------------------------------------------------------------
namespace lt {
namespace {

std::string load_error;
std::string loaded_from;

// The target folder of a CUDA toolkit's libraries (targets/<this>/lib).
#if defined(__aarch64__)
constexpr const char* kTargetDir = "targets/sbsa-linux/lib";
#else
constexpr const char* kTargetDir = "targets/x86_64-linux/lib";
#endif

// "cuda-12.10" before "cuda-12.9": runs of digits compare as numbers, so the newest folder comes first.
bool newer_version(const std::string& a, const std::string& b) {
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (!digit(a[i]) || !digit(b[j])) {
      if (a[i] != b[j]) return a[i] > b[j];
      ++i, ++j;
      continue;
    }
    while (i + 1 < a.size() && a[i] == '0' && digit(a[i + 1])) ++i;
    while (j + 1 < b.size() && b[j] == '0' && digit(b[j + 1])) ++j;
    size_t ei = i, ej = j;
    while (ei < a.size() && digit(a[ei])) ++ei;
    while (ej < b.size() && digit(b[ej])) ++ej;
    if (ei - i != ej - j) return ei - i > ej - j;  // more digits: a larger number
    if (int c = a.compare(i, ei - i, b, j, ej - j); c != 0) return c > 0;
    i = ei, j = ej;
  }
  return a.size() - i > b.size() - j;
}

}  // namespace

std::vector<std::string> library_candidates(const Lookup& lookup) {
  if (std::string explicit_path = lookup.env("STEPVIDEO_CUBLASLT"); !explicit_path.empty()) {
    return {explicit_path};  // explicit: nothing else, so a wrong path is reported, not bypassed
  }
  const char* sonames[] = {"libcublasLt.so.13", "libcublasLt.so.12"};
  std::vector<std::string> out;
  auto add = [&](const std::string& path) {
    if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(path);
  };
  auto add_folder = [&](const std::string& folder) {
    for (const char* name : sonames) add(folder + "/" + name);
  };
  auto add_toolkit = [&](const std::string& root) {
    add_folder(root + "/lib64");
    add_folder(root + "/" + kTargetDir);
  };
  for (const char* name : sonames) add(name);  // LD_LIBRARY_PATH, rpath and the system cache
  for (const char* var : {"CUDA_PATH", "CUDA_HOME"}) {
    if (std::string root = lookup.env(var); !root.empty()) add_toolkit(root);
  }
  add_toolkit("/usr/local/cuda");
  std::vector<std::string> versioned = lookup.glob("/usr/local/cuda-*");
  std::sort(versioned.begin(), versioned.end(), newer_version);
  for (const std::string& root : versioned) add_toolkit(root);
  // pip wheels: nvidia-cublas (CUDA 13) installs nvidia/cu13/lib, nvidia-cublas-cu12 nvidia/cublas/lib.
  // The active virtual environment and conda first, then the user's and the system's Pythons.
  std::vector<std::string> prefixes;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"}) {
    if (std::string prefix = lookup.env(var); !prefix.empty()) prefixes.push_back(prefix + "/lib");
  }
  if (std::string home = lookup.env("HOME"); !home.empty()) prefixes.push_back(home + "/.local/lib");
  prefixes.push_back("/usr/local/lib");
  prefixes.push_back("/usr/lib");
  for (const std::string& prefix : prefixes) {
    for (const char* packages : {"site-packages", "dist-packages"}) {
      for (const std::string& site : lookup.glob(prefix + "/python3*/" + packages)) {
        add(site + "/nvidia/cu13/lib/libcublasLt.so.13");
        add_folder(site + "/nvidia/cublas/lib");
      }
    }
  }
  if (std::string conda = lookup.env("CONDA_PREFIX"); !conda.empty()) add_folder(conda + "/lib");
  return out;
}

Lookup process_lookup() {
  Lookup lookup;
  lookup.env = [](const char* name) { return environment(name); };
  lookup.glob = [](const std::string& pattern) {
    std::vector<std::string> found;
    glob_t matches;
    if (::glob(pattern.c_str(), GLOB_ONLYDIR, nullptr, &matches) == 0) {
      for (size_t i = 0; i < matches.gl_pathc; ++i) found.emplace_back(matches.gl_pathv[i]);
    }
    globfree(&matches);
    return found;
  };
  return lookup;
}

namespace {

void* open_library() {
  const std::vector<std::string> candidates = library_candidates(process_lookup());
  std::string tried;
  for (const std::string& path : candidates) {
    if (void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      loaded_from = path;
      return handle;
    }
    // A library that is there but does not load says why (dlerror names it); a missing one is listed.
    const char* reason = dlerror();
    const bool present = path.find('/') != std::string::npos
                             ? access(path.c_str(), F_OK) == 0
                             : reason != nullptr && std::strstr(reason, "cannot open shared object file") == nullptr;
    tried += (tried.empty() ? "" : ", ") + (present && reason ? std::string(reason) : path);
  }
  const bool explicit_path = candidates.size() == 1 && !process_lookup().env("STEPVIDEO_CUBLASLT").empty();
  load_error = explicit_path ? "STEPVIDEO_CUBLASLT does not name a loadable libcublasLt (" + tried + ")"
                             : "libcublasLt not found (tried " + tried + ")";
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
#if defined(SV_CUDA_EMULATED)
  if (why) *why = "";
  return emulated_api();  // the reference implementation (cuda/emulator/cublaslt.cc)
#endif
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
    if (!ok) {
      load_error = loaded_from + ": " + load_error;
      loaded_from.clear();
      return nullptr;
    }
    // The file the loader picked (a bare soname resolves through LD_LIBRARY_PATH or the cache).
    Dl_info where;
    if (dladdr(reinterpret_cast<void*>(table.create), &where) != 0 && where.dli_fname != nullptr) loaded_from = where.dli_fname;
    return &table;
  }();
  if (why) *why = load_error.c_str();
  return loaded;
}

std::string library_path() {
#if defined(SV_CUDA_EMULATED)
  return "emulated (cuda/emulator/cublaslt.cc)";
#else
  return api() != nullptr ? loaded_from : "";
#endif
}

}  // namespace lt

namespace {

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

const char* kind_name(PlanKind kind) {
  return kind == PlanKind::matmul ? "matmul" : kind == PlanKind::residual ? "residual" : "fp8";
}

struct LtDevice {
  lt::Handle handle = nullptr;
  void* workspace = nullptr;
};

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
  int device = 0;
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

std::mutex lt_mutex;
std::map<int, LtDevice> lt_devices;
std::map<std::pair<int, PlanKey>, Plan> plans;

int alignment_of(const void* p) {
  uintptr_t address = reinterpret_cast<uintptr_t>(p);
  int align = 256;
  while (align > 1 && (address % align) != 0) align >>= 1;
  return align;
}

// Alignment that holds for base + i·stride_bytes for every i (per-group pointers of one plan).
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

// The device's kernel policy (native/kernel_policy.h) forces the own kernel with gemm = fallback.
bool fallback_forced(int device) { return kernel_policy(device).gemm == GemmChoice::fallback; }

// Opt-in (the policy's gemm_autotune) until a GPU run has validated it (test/gpu/dit-perf.test.ts);
// then make it the default.
bool autotune_enabled(int device) { return kernel_policy(device).gemm_autotune; }

// The device's cuBLASLt handle and workspace (made on first use); nullptr when cuBLASLt cannot
// serve the call (then the own kernel runs). The handle is kept only when creation succeeded (a
// failed create may leave garbage in its output), and a failed workspace allocation is retried on
// the next call instead of leaving a handle without workspace behind or failing the op.
LtDevice* lt_device(int device, const lt::Api& api) {
  LtDevice& dev = lt_devices[device];
  if (dev.handle == nullptr) {
    lt::Handle handle = nullptr;
    if (api.create(&handle) != lt::kSuccess) return nullptr;
    dev.handle = handle;
  }
  if (dev.workspace == nullptr) {
    try {
      dev.workspace = alloc(device, kWorkspaceBytes);
    } catch (const Error& error) {
      if (error.code() != "ERR_CUDA_OOM") throw;
      return nullptr;
    }
  }
  return &dev;
}

// cuBLASLt's heuristic looks at the alignment of A, B, C and D only; the kernels it picks may read
// the bias, a device alpha vector or the FP8 scale vectors 16 bytes at a time. A fused epilogue is
// used only when those pointers are 16-byte aligned (every per-group pointer, for vectors indexed
// by group); otherwise the call takes the unfused path.
bool vector_aligned(const void* base, int64_t stride_bytes = 0) {
  return base == nullptr || alignment_of(base, stride_bytes) >= 16;
}

// Asks the heuristic for the plan's candidates (up to 8, best first). The descriptors must be
// complete, scale and bias pointers included: the heuristic looks at their alignment.
void choose_candidates(Plan& plan, const lt::Api& api, LtDevice& dev) {
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
  lt::Status status = api.heuristic(dev.handle, plan.desc, plan.la, plan.lb, plan.lc, plan.ld, pref, kMaxCandidates,
                                    results, &returned);
  api.pref_destroy(pref);
  if (status != lt::kSuccess) returned = 0;
  for (int i = 0; i < returned && i < kMaxCandidates; i++) {
    if (results[i].state == lt::kSuccess) plan.candidates.push_back(Candidate{results[i].algo, results[i].workspace_size});
  }
  plan.usable = !plan.candidates.empty();
  plan.candidate_ms.assign(plan.candidates.size(), -1.0f);
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
lt::Status launch_candidate(const Plan& plan, const lt::Api& api, LtDevice& dev, int index, const void* alpha,
                            const void* a, const void* b, const void* beta, const void* c, void* d, cudaStream_t s) {
  const Candidate& candidate = plan.candidates[index];
  return api.matmul(dev.handle, plan.desc, alpha, a, plan.la, b, plan.lb, beta, c, plan.lc, d, plan.ld,
                    &candidate.algo, dev.workspace, candidate.workspace, s);
}

// Runs the plan: times the candidates on first use (they write d, which the real run below
// overwrites; C is never D here), then the chosen algorithm.
void run_plan(Plan& plan, const lt::Api& api, LtDevice& dev, const void* alpha, const void* a, const void* b,
              const void* beta, const void* c, void* d, cudaStream_t s) {
  const bool autotune = autotune_enabled(plan.device);
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
        launched[i] = launch_candidate(plan, api, dev, static_cast<int>(i), alpha, a, b, beta, c, d, s) == lt::kSuccess;
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
  lt_check(launch_candidate(plan, api, dev, index, alpha, a, b, beta, c, d, s), "Matmul");
}

Plan* find_plan(int device, const PlanKey& key) {
  auto found = plans.find({device, key});
  return found == plans.end() ? nullptr : &found->second;
}

Plan& new_plan(int device, const PlanKey& key) {
  Plan& plan = plans[{device, key}];
  plan.key = key;
  plan.device = device;
  return plan;
}

// ---- plain matmul (+ bias, + GELU-tanh) ----

// Builds (once per shape) the descriptors and the candidates.
Plan& matmul_plan(const MatmulArgs& a, int device, const lt::Api& api, LtDevice& dev) {
  const bool folded = a.b_batch_stride == 0;  // shared weight: fold the batch into m
  const bool gelu = a.epilogue == MatmulEpilogue::gelu_tanh;
  const int align_out = alignment_of(a.out.data);
  // The bias entry is its pointer's alignment (0: none): the heuristic's choice depends on it.
  PlanKey key{static_cast<int>(PlanKind::matmul), static_cast<int>(a.out.dtype), a.trans_b ? 1 : 0,
              a.bias.data ? alignment_of(a.bias.data) : 0,
              gelu ? 1 : 0, 0, folded ? a.m * a.batch : a.m, a.n, a.k, folded ? 1 : a.batch, a.b_batch_stride,
              alignment_of(a.b.data), alignment_of(a.a.data), align_out, align_out};
  if (Plan* found = find_plan(device, key)) return *found;
  Plan& plan = new_plan(device, key);
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
  plan.ld = plan.lc;
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
  choose_candidates(plan, api, dev);
  return plan;
}

// Returns false when cuBLASLt cannot serve this call (then the fallback kernel runs).
bool matmul_cublaslt(const MatmulArgs& a) {
  const lt::Api* api = lt::api();
  if (api == nullptr || !vector_aligned(a.bias.data)) return false;
  const int device = a.out.device;
  std::lock_guard<std::mutex> lock(lt_mutex);
  LtDevice* dev = lt_device(device, *api);
  if (dev == nullptr) return false;
  Plan& plan = matmul_plan(a, device, *api, *dev);
  if (!plan.usable) return false;
  if (a.bias.data) {
    const void* bias_ptr = a.bias.data;
    lt_check(api->matmul_desc_set(plan.desc, lt::kDescBiasPointer, &bias_ptr, sizeof(bias_ptr)), "set BIAS_POINTER");
  }
  const float alpha = a.alpha, beta = 0.0f;
  run_plan(plan, *api, *dev, &alpha, a.b.data, a.a.data, &beta, a.out.data, a.out.data, static_cast<cudaStream_t>(stream(device)));
  return true;
}

// ---- gated residual: out = residual + gate ⊙ (x·Wᵀ) ----
// With a gate, one GEMM per group of rows (per batch item): alpha is the group's gate row as a
// device vector over D's rows (the n output features), beta = 1 on C = the residual. Without a
// gate, one GEMM over all rows with alpha = beta = 1.

bool linear_residual_cublaslt(const LinearResidualArgs& a, const float* gate_f32) {
  const lt::Api* api = lt::api();
  if (api == nullptr) return false;
  const int device = a.out.device;
  const bool gated = gate_f32 != nullptr;
  if (!vector_aligned(gate_f32, a.n * static_cast<int64_t>(sizeof(float)))) return false;
  const int64_t rows = gated ? a.rows_per_group : a.rows;
  const int64_t groups = gated ? a.rows / a.rows_per_group : 1;
  const size_t element = dtype_size(a.out.dtype);
  std::lock_guard<std::mutex> lock(lt_mutex);
  LtDevice* dev = lt_device(device, *api);
  if (dev == nullptr) return false;
  PlanKey key{static_cast<int>(PlanKind::residual), static_cast<int>(a.out.dtype), 1, 0, 0, gated ? 1 : 0, rows, a.n,
              a.k, 1, 0, alignment_of(a.weight.data),
              alignment_of(a.x.data, static_cast<int64_t>(rows * a.k * element)),
              alignment_of(a.residual.data, static_cast<int64_t>(rows * a.n * element)),
              alignment_of(a.out.data, static_cast<int64_t>(rows * a.n * element))};
  Plan* plan = find_plan(device, key);
  if (plan == nullptr) {
    Plan& made = new_plan(device, key);
    const int type = lt_type(a.out.dtype);
    lt_check(api->matmul_desc_create(&made.desc, lt::kCompute32F, lt::kR32F), "MatmulDescCreate");
    int32_t trans_a = lt::kOpT, trans_b = lt::kOpN;
    lt_check(api->matmul_desc_set(made.desc, lt::kDescTransA, &trans_a, sizeof(trans_a)), "set TRANSA");
    lt_check(api->matmul_desc_set(made.desc, lt::kDescTransB, &trans_b, sizeof(trans_b)), "set TRANSB");
    int32_t mode = gated ? lt::kPointerModeAlphaDeviceVectorBetaHost : lt::kPointerModeHost;
    lt_check(api->matmul_desc_set(made.desc, lt::kDescPointerMode, &mode, sizeof(mode)), "set POINTER_MODE");
    lt_check(api->layout_create(&made.la, type, a.k, a.n, a.k), "layout A");
    lt_check(api->layout_create(&made.lb, type, a.k, rows, a.k), "layout B");
    lt_check(api->layout_create(&made.lc, type, a.n, rows, a.n), "layout C");
    made.ld = made.lc;
    choose_candidates(made, *api, *dev);
    plan = &made;
  }
  if (!plan->usable) return false;
  const float one = 1.0f;
  const char* x = static_cast<const char*>(a.x.data);
  const char* residual = static_cast<const char*>(a.residual.data);
  char* out = static_cast<char*>(a.out.data);
  for (int64_t g = 0; g < groups; g++) {
    const void* alpha = gated ? static_cast<const void*>(gate_f32 + g * a.n) : static_cast<const void*>(&one);
    const size_t x_offset = static_cast<size_t>(g * rows * a.k) * element;
    const size_t out_offset = static_cast<size_t>(g * rows * a.n) * element;
    run_plan(*plan, *api, *dev, alpha, a.weight.data, x + x_offset, &one, residual + out_offset, out + out_offset,
             static_cast<cudaStream_t>(stream(device)));
  }
  return true;
}

}  // namespace

// ---- FP8: e4m3 weight (A, op T) × e4m3 activations (B, op N), outer-vector f32 scales ----

bool gemm_fp8_cublaslt(const TensorRef& out, const TensorRef& x_codes, const TensorRef& x_scales,
                       const TensorRef& w_codes, const TensorRef& w_scales, int64_t rows, int64_t n, int64_t k,
                       MatmulEpilogue epilogue) {
  const lt::Api* api = lt::api();
  const int device = out.device;
  if (api == nullptr || fallback_forced(device) || !vector_aligned(w_scales.data) || !vector_aligned(x_scales.data)) return false;
  const bool gelu = epilogue == MatmulEpilogue::gelu_tanh;
  std::lock_guard<std::mutex> lock(lt_mutex);
  LtDevice* dev = lt_device(device, *api);
  if (dev == nullptr) return false;
  const int align_out = alignment_of(out.data);
  PlanKey key{static_cast<int>(PlanKind::fp8), static_cast<int>(out.dtype), 1, 0, gelu ? 1 : 0, 0, rows, n, k, 1, 0,
              alignment_of(w_codes.data), alignment_of(x_codes.data), align_out, align_out};
  const void* a_scale = w_scales.data;
  const void* b_scale = x_scales.data;
  Plan* plan = find_plan(device, key);
  if (plan == nullptr) {
    Plan& made = new_plan(device, key);
    const int type = lt_type(out.dtype);
    lt_check(api->matmul_desc_create(&made.desc, lt::kCompute32F, lt::kR32F), "MatmulDescCreate");
    int32_t trans_a = lt::kOpT, trans_b = lt::kOpN;  // FP8 tensor cores take the "TN" layout only
    lt_check(api->matmul_desc_set(made.desc, lt::kDescTransA, &trans_a, sizeof(trans_a)), "set TRANSA");
    lt_check(api->matmul_desc_set(made.desc, lt::kDescTransB, &trans_b, sizeof(trans_b)), "set TRANSB");
    uint32_t epi = gelu ? lt::kEpilogueGelu : lt::kEpilogueDefault;
    lt_check(api->matmul_desc_set(made.desc, lt::kDescEpilogue, &epi, sizeof(epi)), "set EPILOGUE");
    int32_t scale_mode = lt::kMatrixScaleOuterVec32F;
    // An older cuBLASLt without outer-vector scaling refuses the attribute: no plan, fallback path.
    bool ok = api->matmul_desc_set(made.desc, lt::kDescAScaleMode, &scale_mode, sizeof(scale_mode)) == lt::kSuccess &&
              api->matmul_desc_set(made.desc, lt::kDescBScaleMode, &scale_mode, sizeof(scale_mode)) == lt::kSuccess;
    // Split accumulation (the default) keeps f32 accuracy over long k; fast accumulation is opt-in.
    int8_t fast_accum = kernel_policy(device).fp8_fast_accum ? 1 : 0;
    lt_check(api->matmul_desc_set(made.desc, lt::kDescFastAccum, &fast_accum, sizeof(fast_accum)), "set FAST_ACCUM");
    lt_check(api->matmul_desc_set(made.desc, lt::kDescAScalePointer, &a_scale, sizeof(a_scale)), "set A_SCALE_POINTER");
    lt_check(api->matmul_desc_set(made.desc, lt::kDescBScalePointer, &b_scale, sizeof(b_scale)), "set B_SCALE_POINTER");
    lt_check(api->layout_create(&made.la, lt::kR8FE4M3, k, n, k), "layout A");
    lt_check(api->layout_create(&made.lb, lt::kR8FE4M3, k, rows, k), "layout B");
    lt_check(api->layout_create(&made.lc, type, n, rows, n), "layout C");
    made.ld = made.lc;
    if (ok) choose_candidates(made, *api, *dev);
    plan = &made;
  }
  if (!plan->usable) return false;
  lt_check(api->matmul_desc_set(plan->desc, lt::kDescAScalePointer, &a_scale, sizeof(a_scale)), "set A_SCALE_POINTER");
  lt_check(api->matmul_desc_set(plan->desc, lt::kDescBScalePointer, &b_scale, sizeof(b_scale)), "set B_SCALE_POINTER");
  const float alpha = 1.0f, beta = 0.0f;
  run_plan(*plan, *api, *dev, &alpha, w_codes.data, x_codes.data, &beta, out.data, out.data, static_cast<cudaStream_t>(stream(device)));
  return true;
}

std::vector<GemmPlanInfo> gemm_plans() {
  std::lock_guard<std::mutex> lock(lt_mutex);
  std::vector<GemmPlanInfo> result;
  for (auto& [where, plan] : plans) {
    collect_timings(plan);
    GemmPlanInfo info;
    info.kind = kind_name(static_cast<PlanKind>(plan.key.kind));
    info.device = where.first;
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
  return result;
}

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

void matmul_fallback(const MatmulArgs& a) {
  SV_CHECK(a.batch <= 65535, "ERR_SHAPE", "matmul: batch too large for the fallback kernel");
  SV_CHECK((a.n + BN - 1) / BN <= 65535 && (a.m + BM - 1) / BM <= 2147483647LL, "ERR_SHAPE",
           "matmul: output too large for the fallback kernel's grid");
  dim3 grid(static_cast<unsigned>((a.m + BM - 1) / BM), static_cast<unsigned>((a.n + BN - 1) / BN),
            static_cast<unsigned>(a.batch));
  cudaStream_t s = stream_of(a.out);
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
    launch(SV_HERE, empty_product_kernel<T>, grid_for(rows * a.n, 256), 256, 0, stream_of(a.out),
           a.bias.data ? a.bias.as<const T>() : nullptr, a.out.as<T>(), rows, a.n, gelu);
  });
}

}  // namespace

void matmul(const MatmulArgs& args) {
  use_device(args.out.device);
  if (args.m == 0 || args.n == 0 || args.batch == 0) return;
  if (args.k == 0) {  // an empty product: out = epilogue(bias) (or zeros), as the CPU twin computes
    empty_product(args);
    return;
  }
  if (!fallback_forced(args.out.device) && matmul_cublaslt(args)) return;
  matmul_fallback(args);
}

void linear_residual(const LinearResidualArgs& a) {
  use_device(a.out.device);
  if (a.rows == 0 || a.n == 0) return;
  const int device = a.out.device;
  if (a.k > 0 && !fallback_forced(device) && lt::api() != nullptr) {
    // Alpha vectors have the scale type (f32): a bf16 gate is widened first (B·n elements).
    std::shared_ptr<Storage> widened;
    const float* gate = nullptr;
    if (a.gate.data && a.gate.dtype == DType::f32) {
      gate = a.gate.as<const float>();
    } else if (a.gate.data) {
      widened = Storage::create(device, static_cast<size_t>(a.gate.numel()) * sizeof(float));
      CopyArgs cast;
      cast.dst = a.gate;
      cast.dst.data = widened->data();
      cast.dst.dtype = DType::f32;
      cast.src = a.gate;
      cast.ndim = 1;
      cast.shape[0] = a.gate.numel();
      cast.src_strides[0] = cast.dst_strides[0] = 1;
      copy(cast);
      gate = static_cast<const float*>(widened->data());
    }
    if (linear_residual_cublaslt(a, gate)) return;
  }
  // Unfused: the product into a temporary, then the gated residual kernel.
  std::shared_ptr<Storage> product = Storage::create(device, static_cast<size_t>(a.rows * a.n) * dtype_size(a.out.dtype));
  MatmulArgs m;
  m.out = a.out;
  m.out.data = product->data();
  m.a = a.x;
  m.b = a.weight;
  m.m = a.rows;
  m.n = a.n;
  m.k = a.k;
  m.trans_b = true;
  matmul(m);
  GatedResidualArgs g;
  g.out = a.out;
  g.x = a.residual;
  g.y = m.out;
  g.gate = a.gate;
  g.rows = a.rows;
  g.dim = a.n;
  g.rows_per_group = a.rows_per_group;
  gated_residual(g);
}

CublasLtInfo cublaslt_info() {
  const char* why = nullptr;
  lt::api(&why);
  return {lt::library_path(), why ? why : ""};
}

std::vector<std::string> cublaslt_candidates() { return lt::library_candidates(lt::process_lookup()); }

}  // namespace sv::cuda
