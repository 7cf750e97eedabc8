// GEMM for the CUDA backend: out[b] = alpha · a[b] · op(b[b]) + bias (then optionally GELU-tanh),
// row-major, f32 accumulate, and the gated-residual linear (the residual add in the GEMM epilogue).
// First choice is cuBLASLt (loaded at run time, cuda/cublaslt.cu; plans and autotuning,
// cuda/gemm_plans.cu), with bias and GELU fused in its epilogue. Where cuBLASLt is absent or has
// no algorithm, or the context's kernel policy says gemm = fallback, the own kernels run
// (cuda/gemm_fallback.cu). The FP8 GEMM is cuda/gemm_fp8.cu.
#include <memory>

#include "../native/linear.h"
#include "../native/residual.h"
#include "../native/storage.h"
#include "gemm_common.cuh"

namespace sv::cuda {
namespace {

// ---- plain matmul (+ bias, + GELU-tanh) ----

// Builds (once per shape) the descriptors and the candidates.
Plan& matmul_plan(const MatmulArgs& a, const LtCall& call) {
  const lt::Api& api = *call.api;
  const bool folded = a.b_batch_stride == 0;  // shared weight: fold the batch into m
  const bool gelu = a.epilogue == MatmulEpilogue::gelu_tanh;
  const int align_out = alignment_of(a.out.data);
  // The bias entry is its pointer's alignment (0: none): the heuristic's choice depends on it.
  PlanKey key{static_cast<int>(PlanKind::matmul), static_cast<int>(a.out.dtype), a.trans_b ? 1 : 0,
              a.bias.data ? alignment_of(a.bias.data) : 0,
              gelu ? 1 : 0, 0, folded ? a.m * a.batch : a.m, a.n, a.k, folded ? 1 : a.batch, a.b_batch_stride,
              alignment_of(a.b.data), alignment_of(a.a.data), align_out, align_out};
  if (Plan* found = find_plan(*call.state, key)) return *found;
  Plan& plan = new_plan(*call.state, key);
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
  choose_candidates(plan, call);
  return plan;
}

// Returns false when cuBLASLt cannot serve this call (then the fallback kernel runs).
bool matmul_cublaslt(const ExecContext& ctx, const MatmulArgs& a) {
  if (!vector_aligned(a.bias.data)) return false;
  std::lock_guard<std::mutex> lock(lt_mutex());
  LtCall call;
  if (!lt_begin(ctx, &call)) return false;
  Plan& plan = matmul_plan(a, call);
  if (!plan.usable) return false;
  if (a.bias.data) {
    const void* bias_ptr = a.bias.data;
    lt_check(call.api->matmul_desc_set(plan.desc, lt::kDescBiasPointer, &bias_ptr, sizeof(bias_ptr)), "set BIAS_POINTER");
  }
  const float alpha = a.alpha, beta = 0.0f;
  run_plan(plan, call, &alpha, a.b.data, a.a.data, &beta, a.out.data, a.out.data);
  return true;
}

// ---- gated residual: out = residual + gate ⊙ (x·Wᵀ) ----
// With a gate, one GEMM per group of rows (per batch item): alpha is the group's gate row as a
// device vector over D's rows (the n output features), beta = 1 on C = the residual. Without a
// gate, one GEMM over all rows with alpha = beta = 1.

bool linear_residual_cublaslt(const ExecContext& ctx, const LinearResidualArgs& a, const float* gate_f32) {
  const bool gated = gate_f32 != nullptr;
  if (!vector_aligned(gate_f32, a.n * static_cast<int64_t>(sizeof(float)))) return false;
  const int64_t rows = gated ? a.rows_per_group : a.rows;
  const int64_t groups = gated ? a.rows / a.rows_per_group : 1;
  const size_t element = dtype_size(a.out.dtype);
  std::lock_guard<std::mutex> lock(lt_mutex());
  LtCall call;
  if (!lt_begin(ctx, &call)) return false;
  const lt::Api* api = call.api;
  PlanKey key{static_cast<int>(PlanKind::residual), static_cast<int>(a.out.dtype), 1, 0, 0, gated ? 1 : 0, rows, a.n,
              a.k, 1, 0, alignment_of(a.weight.data),
              alignment_of(a.x.data, static_cast<int64_t>(rows * a.k * element)),
              alignment_of(a.residual.data, static_cast<int64_t>(rows * a.n * element)),
              alignment_of(a.out.data, static_cast<int64_t>(rows * a.n * element))};
  Plan* plan = find_plan(*call.state, key);
  if (plan == nullptr) {
    Plan& made = new_plan(*call.state, key);
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
    choose_candidates(made, call);
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
    run_plan(*plan, call, alpha, a.weight.data, x + x_offset, &one, residual + out_offset, out + out_offset);
  }
  return true;
}

}  // namespace

void matmul(const ExecContext& ctx, const MatmulArgs& args) {
  use_device(ctx.device);
  if (args.m == 0 || args.n == 0 || args.batch == 0) return;
  if (args.k == 0) {  // an empty product: out = epilogue(bias) (or zeros), as the CPU twin computes
    empty_product(ctx, args);
    return;
  }
  if (matmul_cublaslt(ctx, args)) return;
  matmul_fallback(ctx, args);
}

void linear_residual(const ExecContext& ctx, const LinearResidualArgs& a) {
  use_device(ctx.device);
  if (a.rows == 0 || a.n == 0) return;
  if (a.k > 0 && ctx.policy.gemm != GemmChoice::fallback && lt::api() != nullptr) {
    // Alpha vectors have the scale type (f32): a bf16 gate is widened first (B·n elements).
    std::shared_ptr<Storage> widened;
    const float* gate = nullptr;
    if (a.gate.data && a.gate.dtype == DType::f32) {
      gate = a.gate.as<const float>();
    } else if (a.gate.data) {
      widened = Storage::create(ctx.device, static_cast<size_t>(a.gate.numel()) * sizeof(float));
      CopyArgs cast;
      cast.dst = a.gate;
      cast.dst.data = widened->data();
      cast.dst.dtype = DType::f32;
      cast.src = a.gate;
      cast.ndim = 1;
      cast.shape[0] = a.gate.numel();
      cast.src_strides[0] = cast.dst_strides[0] = 1;
      copy(ctx, cast);
      gate = static_cast<const float*>(widened->data());
    }
    if (linear_residual_cublaslt(ctx, a, gate)) return;
  }
  // Unfused: the product into a temporary (a tensor-sized one, counted in the memory figures),
  // then the gated residual kernel.
  std::shared_ptr<Storage> product = Storage::create(ctx.device, static_cast<size_t>(a.rows * a.n) * dtype_size(a.out.dtype));
  MatmulArgs m;
  m.out = a.out;
  m.out.data = product->data();
  m.a = a.x;
  m.b = a.weight;
  m.m = a.rows;
  m.n = a.n;
  m.k = a.k;
  m.trans_b = true;
  matmul(ctx, m);
  GatedResidualArgs g;
  g.out = a.out;
  g.x = a.residual;
  g.y = m.out;
  g.gate = a.gate;
  g.rows = a.rows;
  g.dim = a.n;
  g.rows_per_group = a.rows_per_group;
  gated_residual(ctx, g);
}

}  // namespace sv::cuda
