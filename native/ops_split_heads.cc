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
  NativeTensor* q_norm = optional_tensor(info, 4, "qNorm");
  NativeTensor* k_norm = optional_tensor(info, 5, "kNorm");
  NativeTensor* table = optional_tensor(info, 6, "ropeTable");
  std::vector<int64_t> grid = napi::arg_int_array(info, 7, "grid");
  std::vector<int64_t> split = napi::arg_int_array(info, 8, "split");
  const int device = common_device({proj, q, k, v, q_norm, k_norm, table});
  const ExecContext& ctx = op_context(info, device);
  SplitHeadsArgs a;
  a.proj = proj->ref();
  a.q = optional_ref(q);
  a.k = optional_ref(k);
  a.v = optional_ref(v);
  a.q_norm = optional_ref(q_norm);
  a.k_norm = optional_ref(k_norm);
  a.heads = napi::arg_int(info, 9, "heads");
  a.parts = napi::arg_int(info, 10, "parts");
  a.q_part = static_cast<int32_t>(napi::arg_int(info, 11, "qPart"));
  a.k_part = static_cast<int32_t>(napi::arg_int(info, 12, "kPart"));
  a.v_part = static_cast<int32_t>(napi::arg_int(info, 13, "vPart"));
  a.eps = static_cast<float>(napi::arg_number(info, 14, "eps"));

  SV_CHECK(a.proj.ndim == 3, "ERR_SHAPE", "split_heads: proj must be [B, N, heads·parts·Dh], got " + a.proj.shape_string());
  SV_CHECK(a.heads > 0 && a.parts >= 1 && a.parts <= 3, "ERR_ARGUMENT",
           "split_heads: need heads > 0 and 1 to 3 parts per head, got heads " + str(a.heads) + ", parts " + str(a.parts));
  a.batch = a.proj.shape[0];
  a.tokens = a.proj.shape[1];
  const int64_t width = a.proj.shape[2];
  SV_CHECK(width % (a.heads * a.parts) == 0, "ERR_SHAPE",
           "split_heads: proj width " + str(width) + " is not heads·parts·Dh for " + str(a.heads) + " heads of " +
               str(a.parts) + " parts");
  a.head_dim = width / (a.heads * a.parts);
  SV_CHECK(a.head_dim > 0 && a.head_dim <= kSplitHeadsMaxHeadDim, "ERR_SHAPE",
           "split_heads: head dim " + str(a.head_dim) + " outside [1, " + str(kSplitHeadsMaxHeadDim) + "]");

  // Every produced part has a distinct index inside the group, and its output has the attention layout.
  const struct {
    const char* name;
    NativeTensor* out;
    int32_t part;
  } roles[3] = {{"q", q, a.q_part}, {"k", k, a.k_part}, {"v", v, a.v_part}};
  SV_CHECK(q || k || v, "ERR_ARGUMENT", "split_heads: no output requested");
  for (int i = 0; i < 3; i++) {
    if (!roles[i].out) continue;
    SV_CHECK(roles[i].part >= 0 && roles[i].part < a.parts, "ERR_ARGUMENT",
             std::string("split_heads: part index of ") + roles[i].name + " is " + str(roles[i].part) + ", not in [0, " +
                 str(a.parts) + ")");
    for (int j = 0; j < i; j++) {
      SV_CHECK(!roles[j].out || roles[j].part != roles[i].part, "ERR_ARGUMENT",
               std::string("split_heads: ") + roles[j].name + " and " + roles[i].name + " read the same part");
    }
    const TensorRef& o = roles[i].out->ref();
    SV_CHECK(o.ndim == 4 && o.shape[0] == a.batch && o.shape[1] == a.heads && o.shape[2] == a.tokens &&
                 o.shape[3] == a.head_dim,
             "ERR_SHAPE", std::string("split_heads: ") + roles[i].name + " must be [" + str(a.batch) + ", " + str(a.heads) +
                              ", " + str(a.tokens) + ", " + str(a.head_dim) + "], got " + o.shape_string());
  }
  require_dtype("split_heads", proj->dtype(), {{"q", q}, {"k", k}, {"v", v}, {"qNorm", q_norm}, {"kNorm", k_norm}});
  require_numel("split_heads", a.head_dim, {{"qNorm", q_norm}, {"kNorm", k_norm}});
  SV_CHECK(!q_norm || q, "ERR_ARGUMENT", "split_heads: qNorm given without a q output");
  SV_CHECK(!k_norm || k, "ERR_ARGUMENT", "split_heads: kNorm given without a k output");

  if (table) {
    SV_CHECK(grid.size() == 3 && split.size() == 3, "ERR_ARGUMENT", "split_heads: RoPE grid and split need 3 entries each");
    int64_t tokens = 1, dims = 0, entries = 0;
    for (int axis = 0; axis < 3; axis++) {
      SV_CHECK(grid[axis] > 0 && split[axis] > 0 && split[axis] % 2 == 0, "ERR_ARGUMENT",
               "split_heads: RoPE grid sizes must be positive and slice widths positive and even, got grid [" +
                   str(grid[0]) + ", " + str(grid[1]) + ", " + str(grid[2]) + "], split [" + str(split[0]) + ", " +
                   str(split[1]) + ", " + str(split[2]) + "]");
      tokens *= grid[axis];
      dims += split[axis];
      entries += grid[axis] * split[axis] / 2;
      a.rope.grid[axis] = grid[axis];
      a.rope.split[axis] = split[axis];
    }
    SV_CHECK(tokens == a.tokens, "ERR_SHAPE",
             "split_heads: RoPE grid holds " + str(tokens) + " positions but proj has " + str(a.tokens) + " tokens");
    SV_CHECK(dims == a.head_dim, "ERR_SHAPE",
             "split_heads: RoPE slices cover " + str(dims) + " dims but the head dim is " + str(a.head_dim));
    a.rope.table = table->ref();
    SV_CHECK(table->dtype() == DType::f32 && a.rope.table.ndim == 2 && a.rope.table.shape[0] == 2 &&
                 a.rope.table.shape[1] == entries,
             "ERR_SHAPE", "split_heads: RoPE table must be f32 [2, " + str(entries) + "], got " +
                              dtype_name(table->dtype()) + " " + a.rope.table.shape_string());
    SV_CHECK(q || k, "ERR_ARGUMENT", "split_heads: RoPE table given without a q or k output");
  }

  if (device == kCpuDevice) {
    run_on_cpu({proj, q, k, v, q_norm, k_norm, table}, [ctx, a] { cpu::split_heads(ctx, a); });
  } else {
    SV_CUDA(cuda::split_heads(ctx, a));
  }
  return info.Env().Undefined();
}

void register_split_heads_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("splitHeads", Napi::Function::New(env, op_split_heads));
}

}  // namespace sv
