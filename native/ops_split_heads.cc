// N-API glue of the head-split / QK-Norm / 3D RoPE family (native/split_heads.h).
#include <napi.h>

#include <string>
#include <vector>

#include "dispatch.h"
#include "napi_util.h"
#include "split_heads.h"

namespace sv {
namespace {
std::string str(int64_t v) { return std::to_string(v); }

// The 3D RoPE table and its grid/split, checked against the tokens and the head dim (forward and backward).
void read_rope(NativeTensor* table, const std::vector<int64_t>& grid, const std::vector<int64_t>& split, int64_t tokens_in,
               int64_t head_dim, const std::string& op, Rope3dTable& rope) {
  SV_CHECK(grid.size() == 3 && split.size() == 3, "ERR_ARGUMENT", op + ": RoPE grid and split need 3 entries each");
  int64_t tokens = 1, dims = 0, entries = 0;
  for (int axis = 0; axis < 3; axis++) {
    SV_CHECK(grid[axis] > 0 && split[axis] > 0 && split[axis] % 2 == 0, "ERR_ARGUMENT",
             op + ": RoPE grid sizes must be positive and slice widths positive and even, got grid [" + str(grid[0]) +
                 ", " + str(grid[1]) + ", " + str(grid[2]) + "], split [" + str(split[0]) + ", " + str(split[1]) +
                 ", " + str(split[2]) + "]");
    tokens *= grid[axis];
    dims += split[axis];
    entries += grid[axis] * split[axis] / 2;
    rope.grid[axis] = grid[axis];
    rope.split[axis] = split[axis];
  }
  SV_CHECK(tokens == tokens_in, "ERR_SHAPE",
           op + ": RoPE grid holds " + str(tokens) + " positions but proj has " + str(tokens_in) + " tokens");
  SV_CHECK(dims == head_dim, "ERR_SHAPE",
           op + ": RoPE slices cover " + str(dims) + " dims but the head dim is " + str(head_dim));
  rope.table = table->ref();
  SV_CHECK(table->dtype() == DType::f32 && rope.table.ndim == 2 && rope.table.shape[0] == 2 &&
               rope.table.shape[1] == entries,
           "ERR_SHAPE", op + ": RoPE table must be f32 [2, " + str(entries) + "], got " + dtype_name(table->dtype()) +
                            " " + rope.table.shape_string());
}

// The tensors and RoPE geometry both ops take after their own tensors, from argument `first` on:
// qNorm?, kNorm?, ropeTable?, grid, split (read in that order).
struct NormRopeArgs {
  NativeTensor* q_norm;
  NativeTensor* k_norm;
  NativeTensor* table;
  std::vector<int64_t> grid, split;
};

NormRopeArgs read_norm_rope(const Napi::CallbackInfo& info, int first) {
  return {optional_tensor(info, first, "qNorm"), optional_tensor(info, first + 1, "kNorm"),
          optional_tensor(info, first + 2, "ropeTable"), napi::arg_int_array(info, first + 3, "grid"),
          napi::arg_int_array(info, first + 4, "split")};
}

// One of q, k, v: its name, its tensor (the forward's output, the backward's gradient; nullptr:
// none) and its part index in the layout.
struct PartArg {
  const char* name;
  NativeTensor* tensor;
  int32_t part;
};

// The norm weights and the scalars that splitHeads and splitHeadsBackward both take after their
// tensors: heads, parts, qPart, kPart, vPart, eps, from argument `first` on.
template <typename Args>
void read_layout(const Napi::CallbackInfo& info, int first, NativeTensor* q_norm, NativeTensor* k_norm, Args& a) {
  a.q_norm = optional_ref(q_norm);
  a.k_norm = optional_ref(k_norm);
  a.heads = napi::arg_int(info, first, "heads");
  a.parts = napi::arg_int(info, first + 1, "parts");
  a.q_part = static_cast<int32_t>(napi::arg_int(info, first + 2, "qPart"));
  a.k_part = static_cast<int32_t>(napi::arg_int(info, first + 3, "kPart"));
  a.v_part = static_cast<int32_t>(napi::arg_int(info, first + 4, "vPart"));
  a.eps = static_cast<float>(napi::arg_number(info, first + 5, "eps"));
}

// batch, tokens and head_dim from proj [B, N, heads·parts·Dh] (its rank checked by the caller),
// with heads and parts checked first.
template <typename Args>
void read_head_shape(const std::string& op, Args& a) {
  SV_CHECK(a.heads > 0 && a.parts >= 1 && a.parts <= 3, "ERR_ARGUMENT",
           op + ": need heads > 0 and 1 to 3 parts per head, got heads " + str(a.heads) + ", parts " + str(a.parts));
  a.batch = a.proj.shape[0];
  a.tokens = a.proj.shape[1];
  const int64_t width = a.proj.shape[2];
  SV_CHECK(width % (a.heads * a.parts) == 0, "ERR_SHAPE",
           op + ": proj width " + str(width) + " is not heads·parts·Dh for " + str(a.heads) + " heads of " +
               str(a.parts) + " parts");
  a.head_dim = width / (a.heads * a.parts);
  SV_CHECK(a.head_dim > 0 && a.head_dim <= kSplitHeadsMaxHeadDim, "ERR_SHAPE",
           op + ": head dim " + str(a.head_dim) + " outside [1, " + str(kSplitHeadsMaxHeadDim) + "]");
}

// A part's tensor t (an output of the forward, a gradient of the backward) in the attention layout
// [batch, heads, tokens, head_dim]; `what` names it in the message.
template <typename Args>
void check_head_layout(const std::string& what, const TensorRef& t, const Args& a) {
  SV_CHECK(t.ndim == 4 && t.shape[0] == a.batch && t.shape[1] == a.heads && t.shape[2] == a.tokens &&
               t.shape[3] == a.head_dim,
           "ERR_SHAPE", what + " must be [" + str(a.batch) + ", " + str(a.heads) + ", " + str(a.tokens) + ", " +
                            str(a.head_dim) + "], got " + t.shape_string());
}
}  // namespace

// splitHeads(proj, q?, k?, v?, qNorm?, kNorm?, ropeTable?, grid, split, heads, parts, qPart, kPart, vPart, eps)
//   proj [B, N, heads·parts·Dh]; q/k/v [B, heads, N, Dh] (null: not produced); qNorm/kNorm [Dh];
//   ropeTable f32 [2, T] over grid [F, Hg, Wg] (F·Hg·Wg = N) with head-dim split [s0, s1, s2];
//   xPart: index of that part inside a head's group of `parts`, -1 when absent.
SV_EXPORT(op_split_heads) {
  NativeTensor* proj = NativeTensor::unwrap(info[0], "proj");
  NativeTensor* q = optional_tensor(info, 1, "q");
  NativeTensor* k = optional_tensor(info, 2, "k");
  NativeTensor* v = optional_tensor(info, 3, "v");
  const auto [q_norm, k_norm, table, grid, split] = read_norm_rope(info, 4);
  const int device = common_device({proj, q, k, v, q_norm, k_norm, table});
  const ExecContext& ctx = op_context(info, device);
  SplitHeadsArgs a;
  a.proj = proj->ref();
  a.q = optional_ref(q);
  a.k = optional_ref(k);
  a.v = optional_ref(v);
  read_layout(info, 9, q_norm, k_norm, a);

  SV_CHECK(a.proj.ndim == 3, "ERR_SHAPE", "split_heads: proj must be [B, N, heads·parts·Dh], got " + a.proj.shape_string());
  read_head_shape("split_heads", a);

  // Every produced part has a distinct index inside the group, and its output has the attention layout.
  const PartArg roles[3] = {{"q", q, a.q_part}, {"k", k, a.k_part}, {"v", v, a.v_part}};
  SV_CHECK(q || k || v, "ERR_ARGUMENT", "split_heads: no output requested");
  for (int i = 0; i < 3; i++) {
    if (!roles[i].tensor) continue;
    SV_CHECK(roles[i].part >= 0 && roles[i].part < a.parts, "ERR_ARGUMENT",
             std::string("split_heads: part index of ") + roles[i].name + " is " + str(roles[i].part) + ", not in [0, " +
                 str(a.parts) + ")");
    for (int j = 0; j < i; j++) {
      SV_CHECK(!roles[j].tensor || roles[j].part != roles[i].part, "ERR_ARGUMENT",
               std::string("split_heads: ") + roles[j].name + " and " + roles[i].name + " read the same part");
    }
    check_head_layout(std::string("split_heads: ") + roles[i].name, roles[i].tensor->ref(), a);
  }
  require_dtype("split_heads", proj->dtype(), {{"q", q}, {"k", k}, {"v", v}, {"qNorm", q_norm}, {"kNorm", k_norm}});
  require_numel("split_heads", a.head_dim, {{"qNorm", q_norm}, {"kNorm", k_norm}});
  SV_CHECK(!q_norm || q, "ERR_ARGUMENT", "split_heads: qNorm given without a q output");
  SV_CHECK(!k_norm || k, "ERR_ARGUMENT", "split_heads: kNorm given without a k output");

  if (table) {
    read_rope(table, grid, split, a.tokens, a.head_dim, "split_heads", a.rope);
    SV_CHECK(q || k, "ERR_ARGUMENT", "split_heads: RoPE table given without a q or k output");
  }

  if (device == kCpuDevice) {
    run_on_cpu({proj, q, k, v, q_norm, k_norm, table}, [ctx, a] { cpu::split_heads(ctx, a); });
  } else {
    SV_CUDA(cuda::split_heads(ctx, a));
  }
  return info.Env().Undefined();
}

// splitHeadsBackward(dproj, proj, dq?, dk?, dv?, qNorm?, kNorm?, ropeTable?, grid, split, heads, parts, qPart, kPart, vPart, eps)
//   dproj, proj [B, N, heads·parts·Dh]; dq/dk/dv [B, heads, N, Dh] (null: zero gradient);
//   the rest as splitHeads (xPart: the part's index in the layout, -1 when the layout lacks it).
SV_EXPORT(op_split_heads_backward) {
  NativeTensor* dproj = NativeTensor::unwrap(info[0], "dproj");
  NativeTensor* proj = NativeTensor::unwrap(info[1], "proj");
  NativeTensor* dq = optional_tensor(info, 2, "dq");
  NativeTensor* dk = optional_tensor(info, 3, "dk");
  NativeTensor* dv = optional_tensor(info, 4, "dv");
  const auto [q_norm, k_norm, table, grid, split] = read_norm_rope(info, 5);
  const int device = common_device({dproj, proj, dq, dk, dv, q_norm, k_norm, table});
  const ExecContext& ctx = op_context(info, device);
  SplitHeadsBackwardArgs a;
  a.dproj = dproj->ref();
  a.proj = proj->ref();
  a.dq = optional_ref(dq);
  a.dk = optional_ref(dk);
  a.dv = optional_ref(dv);
  read_layout(info, 10, q_norm, k_norm, a);

  SV_CHECK(a.proj.ndim == 3 && dproj->shape() == proj->shape(), "ERR_SHAPE",
           "split_heads_backward: proj must be [B, N, heads·parts·Dh] and dproj of its shape, got " +
               a.proj.shape_string() + " and " + a.dproj.shape_string());
  read_head_shape("split_heads_backward", a);

  // Every part of the layout has a distinct index inside the group; every given gradient belongs to
  // a part of the layout and has the attention layout.
  const PartArg roles[3] = {{"q", dq, a.q_part}, {"k", dk, a.k_part}, {"v", dv, a.v_part}};
  for (int i = 0; i < 3; i++) {
    SV_CHECK(roles[i].part >= -1 && roles[i].part < a.parts, "ERR_ARGUMENT",
             std::string("split_heads_backward: part index of ") + roles[i].name + " is " + str(roles[i].part) +
                 ", not in [-1, " + str(a.parts) + ")");
    for (int j = 0; j < i; j++) {
      SV_CHECK(roles[i].part < 0 || roles[j].part != roles[i].part, "ERR_ARGUMENT",
               std::string("split_heads_backward: ") + roles[j].name + " and " + roles[i].name + " read the same part");
    }
    if (!roles[i].tensor) continue;
    SV_CHECK(roles[i].part >= 0, "ERR_ARGUMENT",
             std::string("split_heads_backward: a gradient of ") + roles[i].name + " is given but the layout lacks it");
    check_head_layout(std::string("split_heads_backward: d") + roles[i].name, roles[i].tensor->ref(), a);
  }
  require_dtype("split_heads_backward", proj->dtype(),
                {{"dproj", dproj}, {"dq", dq}, {"dk", dk}, {"dv", dv}, {"qNorm", q_norm}, {"kNorm", k_norm}});
  require_numel("split_heads_backward", a.head_dim, {{"qNorm", q_norm}, {"kNorm", k_norm}});
  SV_CHECK(!q_norm || a.q_part >= 0, "ERR_ARGUMENT", "split_heads_backward: qNorm given but the layout has no q");
  SV_CHECK(!k_norm || a.k_part >= 0, "ERR_ARGUMENT", "split_heads_backward: kNorm given but the layout has no k");
  if (table) {
    read_rope(table, grid, split, a.tokens, a.head_dim, "split_heads_backward", a.rope);
    SV_CHECK(a.q_part >= 0 || a.k_part >= 0, "ERR_ARGUMENT", "split_heads_backward: RoPE table given but the layout has no q or k");
  }

  if (device == kCpuDevice) {
    run_on_cpu({dproj, proj, dq, dk, dv, q_norm, k_norm, table}, [ctx, a] { cpu::split_heads_backward(ctx, a); });
  } else {
    SV_CUDA(cuda::split_heads_backward(ctx, a));
  }
  return info.Env().Undefined();
}

void register_split_heads_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("splitHeads", Napi::Function::New(env, op_split_heads));
  ops.Set("splitHeadsBackward", Napi::Function::New(env, op_split_heads_backward));
}

}  // namespace sv
