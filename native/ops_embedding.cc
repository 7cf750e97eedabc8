// N-API glue of the embedding family (native/embedding.h).
#include <napi.h>

#include "dispatch.h"
#include "embedding.h"
#include "napi_util.h"

namespace sv {

// embedding(out, table, ids): table [vocab, dim] float, ids i32/i64 [...], out [..., dim] in the
// table's dtype. Id values are the caller's to check (see native/embedding.h).
SV_EXPORT(op_embedding) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* table = NativeTensor::unwrap(info[1], "table");
  NativeTensor* ids = NativeTensor::unwrap(info[2], "ids");
  const int device = common_device({out, table, ids});
  const ExecContext& ctx = op_context(info, device);
  EmbeddingArgs a;
  a.out = out->ref();
  a.table = table->ref();
  a.ids = ids->ref();
  SV_CHECK(a.table.ndim == 2, "ERR_SHAPE", "embedding: table must be [vocab, dim], got " + a.table.shape_string());
  SV_CHECK(ids->dtype() == DType::i32 || ids->dtype() == DType::i64, "ERR_DTYPE",
           std::string("embedding: ids must be i32 or i64, got ") + dtype_name(ids->dtype()));
  require_dtype("embedding", table->dtype(), {{"out", out}});
  a.vocab = a.table.shape[0];
  a.dim = a.table.shape[1];
  a.rows = a.ids.numel();
  std::vector<int64_t> expected = ids->shape();
  expected.push_back(a.dim);
  SV_CHECK(out->shape() == expected, "ERR_SHAPE",
           "embedding: out must be ids' shape + [" + std::to_string(a.dim) + "], got " + a.out.shape_string() +
               " for ids " + a.ids.shape_string());
  if (device == kCpuDevice) {
    run_on_cpu({out, table, ids}, [ctx, a] { cpu::embedding(ctx, a); });
  } else {
    SV_CUDA(cuda::embedding(ctx, a));
  }
  return info.Env().Undefined();
}

void register_embedding_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("embedding", Napi::Function::New(env, op_embedding));
}

}  // namespace sv
