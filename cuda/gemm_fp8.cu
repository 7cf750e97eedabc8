// The e4m3 FP8 GEMM through cuBLASLt (native/fp8.h): weight codes (A, op T) × activation codes
// (B, op N) with one f32 scale per output feature and per row (outer-vector scaling, cuBLAS 12.9+).
#include "../native/fp8.h"
#include "gemm_common.cuh"

namespace sv::cuda {

// ---- FP8: e4m3 weight (A, op T) × e4m3 activations (B, op N), outer-vector f32 scales ----

bool gemm_fp8_cublaslt(const ExecContext& ctx, const TensorRef& out, const TensorRef& x_codes, const TensorRef& x_scales,
                       const TensorRef& w_codes, const TensorRef& w_scales, int64_t rows, int64_t n, int64_t k,
                       MatmulEpilogue epilogue) {
  if (!vector_aligned(w_scales.data) || !vector_aligned(x_scales.data)) return false;
  const bool gelu = epilogue == MatmulEpilogue::gelu_tanh;
  std::lock_guard<std::mutex> lock(lt_mutex());
  LtCall call;
  if (!lt_begin(ctx, &call)) return false;
  const lt::Api* api = call.api;
  const int align_out = alignment_of(out.data);
  PlanKey key{static_cast<int>(PlanKind::fp8), static_cast<int>(out.dtype), 1, 0, gelu ? 1 : 0, 0, rows, n, k, 1, 0,
              alignment_of(w_codes.data), alignment_of(x_codes.data), align_out, align_out};
  const void* a_scale = w_scales.data;
  const void* b_scale = x_scales.data;
  Plan* plan = find_plan(*call.state, key);
  if (plan == nullptr) {
    Plan& made = new_plan(*call.state, key);
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
    int8_t fast_accum = ctx.policy.fp8_fast_accum ? 1 : 0;
    lt_check(api->matmul_desc_set(made.desc, lt::kDescFastAccum, &fast_accum, sizeof(fast_accum)), "set FAST_ACCUM");
    lt_check(api->matmul_desc_set(made.desc, lt::kDescAScalePointer, &a_scale, sizeof(a_scale)), "set A_SCALE_POINTER");
    lt_check(api->matmul_desc_set(made.desc, lt::kDescBScalePointer, &b_scale, sizeof(b_scale)), "set B_SCALE_POINTER");
    lt_check(api->layout_create(&made.la, lt::kR8FE4M3, k, n, k), "layout A");
    lt_check(api->layout_create(&made.lb, lt::kR8FE4M3, k, rows, k), "layout B");
    lt_check(api->layout_create(&made.lc, type, n, rows, n), "layout C");
    made.ld = made.lc;
    if (ok) choose_candidates(made, call);
    plan = &made;
  }
  if (!plan->usable) return false;
  lt_check(api->matmul_desc_set(plan->desc, lt::kDescAScalePointer, &a_scale, sizeof(a_scale)), "set A_SCALE_POINTER");
  lt_check(api->matmul_desc_set(plan->desc, lt::kDescBScalePointer, &b_scale, sizeof(b_scale)), "set B_SCALE_POINTER");
  const float alpha = 1.0f, beta = 0.0f;
  run_plan(*plan, call, &alpha, w_codes.data, x_codes.data, &beta, out.data, out.data);
  return true;
}

}  // namespace sv::cuda
