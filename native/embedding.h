// Embedding lookup: out[r, :] = table[ids[r], :] for a [vocab, dim] table and integer ids (i32 or
// i64), as nn.Embedding does for the Step-LLM and BERT word, position and token-type tables.
// Id values are checked on the host by the only caller (lib/kernels/embedding.ts) before the ids
// are uploaded, since the glue cannot read device-resident ids without a sync. The kernels still
// guard every id and write a zero row for one outside the table, so no lookup reads out of bounds.
#pragma once
#include <cstdint>

#include "exec_context.h"
#include "tensor_ref.h"

namespace sv {

struct EmbeddingArgs {
  TensorRef out, table, ids;
  int64_t rows = 0, dim = 0, vocab = 0;  // rows = ids.numel(); table [vocab, dim]; out [rows, dim]
};

namespace cpu {
void embedding(const ExecContext& ctx, const EmbeddingArgs& args);
}
namespace cuda {
void embedding(const ExecContext& ctx, const EmbeddingArgs& args);
}

}  // namespace sv
