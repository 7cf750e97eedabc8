// N-API glue of the attention family (native/attention.h).
#include <napi.h>

#include <string>
#include <tuple>
#include <vector>

#include "attention.h"
#include "dispatch.h"
#include "napi_util.h"

namespace sv {

namespace {

struct AttentionCall {
  AttentionArgs args;
  NativeTensor *out, *q, *k, *v, *kv_len;
  ExecContext ctx;
};

// (out, q, k, v, kvLen?, scale, causal, alibiSqrt), validated completely.
AttentionCall read_attention_call(const Napi::CallbackInfo& info) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* q = NativeTensor::unwrap(info[1], "q");
  NativeTensor* k = NativeTensor::unwrap(info[2], "k");
  NativeTensor* v = NativeTensor::unwrap(info[3], "v");
  NativeTensor* kv_len = optional_tensor(info, 4, "kvLen");
  const int device = common_device({out, q, k, v, kv_len});
  AttentionArgs a;
  a.out = out->ref();
  a.q = q->ref();
  a.k = k->ref();
  a.v = v->ref();
  a.kv_len = optional_ref(kv_len);
  a.scale = static_cast<float>(napi::arg_number(info, 5, "scale"));
  a.causal = napi::arg_bool(info, 6, "causal");
  a.alibi_sqrt = napi::arg_bool(info, 7, "alibiSqrt");
  SV_CHECK(a.q.ndim == 4 && a.k.ndim == 4 && a.v.ndim == 4 && a.out.ndim == 4, "ERR_SHAPE",
           "attention: expected q [B, H, Nq, D], k/v [B, Hkv, Nk, D], out [B, Nq, H, D], got q " + a.q.shape_string() +
               ", k " + a.k.shape_string() + ", v " + a.v.shape_string() + ", out " + a.out.shape_string());
  a.batch = a.q.shape[0];
  a.heads = a.q.shape[1];
  a.q_len = a.q.shape[2];
  a.head_dim = a.q.shape[3];
  a.kv_heads = a.k.shape[1];
  a.kv_len_max = a.k.shape[2];
  SV_CHECK(a.k.shape[0] == a.batch && a.k.shape[3] == a.head_dim && v->shape() == k->shape(), "ERR_SHAPE",
           "attention: k " + a.k.shape_string() + " and v " + a.v.shape_string() + " must be [" + std::to_string(a.batch) +
               ", Hkv, Nk, " + std::to_string(a.head_dim) + "]");
  SV_CHECK(a.kv_heads > 0 && a.heads % a.kv_heads == 0, "ERR_SHAPE",
           "attention: " + std::to_string(a.heads) + " query heads are not a multiple of " + std::to_string(a.kv_heads) +
               " key/value heads");
  SV_CHECK(a.out.shape[0] == a.batch && a.out.shape[1] == a.q_len && a.out.shape[2] == a.heads &&
               a.out.shape[3] == a.head_dim,
           "ERR_SHAPE", "attention: out must be [B, Nq, H, D] = [" + std::to_string(a.batch) + ", " +
                            std::to_string(a.q_len) + ", " + std::to_string(a.heads) + ", " + std::to_string(a.head_dim) +
                            "], got " + a.out.shape_string());
  SV_CHECK(!a.causal || a.kv_len_max >= a.q_len, "ERR_SHAPE", "attention: causal needs at least as many keys as queries");
  SV_CHECK(!a.alibi_sqrt || a.causal, "ERR_ARGUMENT", "attention: ALiBi-sqrt is defined for causal attention only");
  require_dtype("attention", q->dtype(), {{"out", out}, {"k", k}, {"v", v}});
  if (kv_len) {
    SV_CHECK(kv_len->dtype() == DType::i32 && a.kv_len.numel() == a.batch, "ERR_SHAPE",
             "attention: kvLen must be i32 [" + std::to_string(a.batch) + "], got " + dtype_name(kv_len->dtype()) + " " +
                 a.kv_len.shape_string());
  }
  return AttentionCall{a, out, q, k, v, kv_len, op_context(info, device)};
}

}  // namespace

// attention(out, q, k, v, kvLen?, scale, causal, alibiSqrt)
SV_EXPORT(op_attention) {
  const AttentionCall c = read_attention_call(info);
  if (c.ctx.device == kCpuDevice) {
    run_on_cpu({c.out, c.q, c.k, c.v, c.kv_len}, [ctx = c.ctx, a = c.args] { cpu::attention(ctx, a); });
  } else {
    SV_CUDA(cuda::attention(c.ctx, c.args));
  }
  return info.Env().Undefined();
}

// attentionKernelName(same arguments as attention): which kernel attention would run ("cpu" on the host).
SV_EXPORT(op_attention_kernel_name) {
  const AttentionCall c = read_attention_call(info);
  if (c.ctx.device == kCpuDevice) return Napi::String::New(info.Env(), "cpu");
#ifdef SV_WITH_CUDA
  return Napi::String::New(info.Env(), cuda::attention_kernel_name(c.ctx, c.args));
#else
  return Napi::String::New(info.Env(), "none");
#endif
}

// attentionBackward(dq, dk, dv, q, k, v, out, dOut, kvLen?, scale): the gradients of non-causal
// attention without ALiBi, H == Hkv (native/attention.h), validated completely.
SV_EXPORT(op_attention_backward) {
  NativeTensor* dq = NativeTensor::unwrap(info[0], "dq");
  NativeTensor* dk = NativeTensor::unwrap(info[1], "dk");
  NativeTensor* dv = NativeTensor::unwrap(info[2], "dv");
  NativeTensor* q = NativeTensor::unwrap(info[3], "q");
  NativeTensor* k = NativeTensor::unwrap(info[4], "k");
  NativeTensor* v = NativeTensor::unwrap(info[5], "v");
  NativeTensor* out = NativeTensor::unwrap(info[6], "out");
  NativeTensor* d_out = NativeTensor::unwrap(info[7], "dOut");
  NativeTensor* kv_len = optional_tensor(info, 8, "kvLen");
  const int device = common_device({dq, dk, dv, q, k, v, out, d_out, kv_len});
  AttentionBackwardArgs a;
  a.dq = dq->ref();
  a.dk = dk->ref();
  a.dv = dv->ref();
  a.q = q->ref();
  a.k = k->ref();
  a.v = v->ref();
  a.out = out->ref();
  a.d_out = d_out->ref();
  a.kv_len = optional_ref(kv_len);
  a.scale = static_cast<float>(napi::arg_number(info, 9, "scale"));
  const auto named = [](const char* name, const TensorRef& t) { return std::string(name) + " " + t.shape_string(); };
  SV_CHECK(a.q.ndim == 4 && a.k.ndim == 4, "ERR_SHAPE",
           "attentionBackward: expected q [B, H, Nq, D] and k [B, H, Nk, D], got " + named("q", a.q) + ", " + named("k", a.k));
  a.batch = a.q.shape[0];
  a.heads = a.q.shape[1];
  a.q_len = a.q.shape[2];
  a.head_dim = a.q.shape[3];
  a.kv_len_max = a.k.shape[2];
  const std::vector<int64_t> q_shape = q->shape();
  const std::vector<int64_t> kv_shape = {a.batch, a.heads, a.kv_len_max, a.head_dim};
  const std::vector<int64_t> out_shape = {a.batch, a.q_len, a.heads, a.head_dim};
  const auto dims = [](const std::vector<int64_t>& s) {
    std::string text = "[";
    for (size_t i = 0; i < s.size(); i++) text += (i ? ", " : "") + std::to_string(s[i]);
    return text + "]";
  };
  // Each tensor against the shape q and k imply, named when it differs.
  for (const auto& [name, t, want] : {std::tuple{"k", k, kv_shape}, std::tuple{"v", v, kv_shape}, std::tuple{"out", out, out_shape},
                                      std::tuple{"dOut", d_out, out_shape}, std::tuple{"dq", dq, q_shape},
                                      std::tuple{"dk", dk, kv_shape}, std::tuple{"dv", dv, kv_shape}}) {
    SV_CHECK(t->shape() == want, "ERR_SHAPE",
             std::string("attentionBackward: ") + name + " must be " + dims(want) + " (H == Hkv), got " + dims(t->shape()));
  }
  require_dtype("attentionBackward", q->dtype(), {{"k", k}, {"v", v}, {"out", out}, {"dOut", d_out}, {"dq", dq}, {"dk", dk}, {"dv", dv}});
  if (kv_len) {
    SV_CHECK(kv_len->dtype() == DType::i32 && a.kv_len.numel() == a.batch, "ERR_SHAPE",
             "attentionBackward: kvLen must be i32 [" + std::to_string(a.batch) + "], got " + dtype_name(kv_len->dtype()) + " " +
                 a.kv_len.shape_string());
  }
  const ExecContext& ctx = op_context(info, device);
  if (device == kCpuDevice) {
    run_on_cpu({dq, dk, dv, q, k, v, out, d_out, kv_len}, [ctx, a] { cpu::attention_backward(ctx, a); });
  } else {
    SV_CUDA(cuda::attention_backward(ctx, a));
  }
  return info.Env().Undefined();
}

void register_attention_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("attention", Napi::Function::New(env, op_attention));
  ops.Set("attentionKernelName", Napi::Function::New(env, op_attention_kernel_name));
  ops.Set("attentionBackward", Napi::Function::New(env, op_attention_backward));
}

}  // namespace sv
