// N-API glue of the foundation ops: copy/cast, broadcasting binary ops, unary activations,
// matmul/linear, softmax, reductions, fill. Each function validates shapes, dtypes and devices
// completely (a kernel never sees a bad Args block), then dispatches to the CPU or CUDA kernel.
#include <napi.h>

#include <iterator>
#include <string>

#include "dispatch.h"
#include "kernels.h"
#include "napi_util.h"

namespace sv {
namespace {

std::string shape_of(const NativeTensor* t) { return t->ref().shape_string(); }

// Checks that a strided walk of `shape` from `offset` stays inside a tensor of `numel` elements.
void check_extent(const int64_t* shape, const int64_t* strides, int ndim, int64_t offset, int64_t numel,
                  const char* what) {
  int64_t last = offset;
  bool empty = false;
  for (int i = 0; i < ndim; i++) {
    SV_CHECK(strides[i] >= 0, "ERR_ARGUMENT", std::string(what) + ": negative stride");
    if (shape[i] == 0) empty = true;
    if (shape[i] > 0) last += (shape[i] - 1) * strides[i];
  }
  SV_CHECK(offset >= 0, "ERR_ARGUMENT", std::string(what) + ": negative offset");
  SV_CHECK(empty || last < numel, "ERR_SHAPE", std::string(what) + ": strided access reaches element " +
                                                   std::to_string(last) + " of a tensor of " +
                                                   std::to_string(numel) + " elements");
}

}  // namespace

int64_t rows_per_gate_group(const char* op, const TensorRef& gate, int64_t rows, int64_t dim) {
  SV_CHECK(gate.ndim == 2 && gate.shape[1] == dim && gate.shape[0] > 0 && rows % gate.shape[0] == 0, "ERR_SHAPE",
           std::string(op) + ": gate must be [groups, " + std::to_string(dim) + "] with groups dividing " + std::to_string(rows) +
               " rows, got " + gate.shape_string());
  return rows / gate.shape[0];
}

int common_device(std::initializer_list<const NativeTensor*> tensors) {
  int device = -2;
  for (const NativeTensor* t : tensors) {
    if (t == nullptr) continue;
    if (device == -2) device = t->device();
    SV_CHECK(t->device() == device, "ERR_DEVICE",
             "tensors of one op must be on one device: got " + std::string(device < 0 ? "cpu" : "cuda:" + std::to_string(device)) +
                 " and " + (t->device() < 0 ? "cpu" : "cuda:" + std::to_string(t->device())));
  }
  return device;
}

void require_dtype(const char* op, DType dtype, std::initializer_list<std::pair<const char*, const NativeTensor*>> tensors) {
  for (const auto& [name, t] : tensors) {
    if (t == nullptr) continue;
    SV_CHECK(t->dtype() == dtype, "ERR_DTYPE",
             std::string(op) + ": expected " + dtype_name(dtype) + ", got " + dtype_name(t->dtype()) + " (tensor '" + name + "')");
  }
}

void require_numel(const char* op, int64_t count, std::initializer_list<std::pair<const char*, const NativeTensor*>> tensors) {
  for (const auto& [name, t] : tensors) {
    if (t == nullptr) continue;
    SV_CHECK(t->ref().numel() == count, "ERR_SHAPE",
             std::string(op) + ": expected " + std::to_string(count) + " elements, got " + t->ref().shape_string() +
                 " (tensor '" + name + "')");
  }
}

// copy(dst, src, shape, srcStrides, srcOffset, dstStrides, dstOffset)
SV_EXPORT(op_copy) {
  NativeTensor* dst = NativeTensor::unwrap(info[0], "dst");
  NativeTensor* src = NativeTensor::unwrap(info[1], "src");
  std::vector<int64_t> shape = napi::arg_int_array(info, 2, "shape");
  std::vector<int64_t> src_strides = napi::arg_int_array(info, 3, "srcStrides");
  int64_t src_offset = napi::arg_int(info, 4, "srcOffset");
  std::vector<int64_t> dst_strides = napi::arg_int_array(info, 5, "dstStrides");
  int64_t dst_offset = napi::arg_int(info, 6, "dstOffset");
  const int device = common_device({dst, src});
  const ExecContext& ctx = op_context(info, device);
  checked_numel(shape, "copy");
  SV_CHECK(src_strides.size() == shape.size() && dst_strides.size() == shape.size(), "ERR_ARGUMENT",
           "copy: strides must have one entry per dimension");
  CopyArgs args;
  args.dst = dst->ref();
  args.src = src->ref();
  args.ndim = static_cast<int32_t>(shape.size());
  for (size_t i = 0; i < shape.size(); i++) {
    args.shape[i] = shape[i];
    args.src_strides[i] = src_strides[i];
    args.dst_strides[i] = dst_strides[i];
  }
  args.src_offset = src_offset;
  args.dst_offset = dst_offset;
  check_extent(args.shape, args.src_strides, args.ndim, src_offset, args.src.numel(), "copy source");
  check_extent(args.shape, args.dst_strides, args.ndim, dst_offset, args.dst.numel(), "copy destination");
  if (device == kCpuDevice) {
    run_on_cpu({dst, src}, [ctx, args] { cpu::copy(ctx, args); });
  } else {
    SV_CUDA(cuda::copy(ctx, args));
  }
  return info.Env().Undefined();
}

// binary(out, a, b, op): a and b broadcast (right-aligned) to out's shape.
SV_EXPORT(op_binary) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* a = NativeTensor::unwrap(info[1], "a");
  NativeTensor* b = NativeTensor::unwrap(info[2], "b");
  int64_t op = napi::arg_int(info, 3, "op");
  SV_CHECK(op >= 0 && op < static_cast<int64_t>(std::size(kBinaryOpNames)), "ERR_ARGUMENT", "binary: unknown op " + std::to_string(op));
  const int device = common_device({out, a, b});
  const ExecContext& ctx = op_context(info, device);
  SV_CHECK(a->dtype() == out->dtype() && b->dtype() == out->dtype(), "ERR_DTYPE",
           std::string("binary: operands must share out's dtype ") + dtype_name(out->dtype()));
  BinaryArgs args;
  args.out = out->ref();
  args.a = a->ref();
  args.b = b->ref();
  args.op = static_cast<BinaryOp>(op);
  args.ndim = args.out.ndim;
  for (int i = 0; i < args.ndim; i++) args.shape[i] = args.out.shape[i];
  const TensorRef* operands[2] = {&args.a, &args.b};
  int64_t* strides[2] = {args.a_strides, args.b_strides};
  for (int which = 0; which < 2; which++) {
    const TensorRef& t = *operands[which];
    SV_CHECK(t.ndim <= args.ndim, "ERR_SHAPE",
             "binary: operand " + t.shape_string() + " does not broadcast to " + args.out.shape_string());
    int64_t stride = 1;
    for (int i = args.ndim - 1; i >= 0; i--) {
      int ti = i - (args.ndim - t.ndim);
      if (ti < 0) {
        strides[which][i] = 0;
        continue;
      }
      int64_t dim = t.shape[ti];
      SV_CHECK(dim == args.shape[i] || dim == 1, "ERR_SHAPE",
               "binary: operand " + t.shape_string() + " does not broadcast to " + args.out.shape_string());
      strides[which][i] = dim == 1 ? 0 : stride;
      stride *= dim;
    }
  }
  if (device == kCpuDevice) {
    run_on_cpu({out, a, b}, [ctx, args] { cpu::binary(ctx, args); });
  } else {
    SV_CUDA(cuda::binary(ctx, args));
  }
  return info.Env().Undefined();
}

// unary(out, x, op, alpha, beta)
SV_EXPORT(op_unary) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* x = NativeTensor::unwrap(info[1], "x");
  int64_t op = napi::arg_int(info, 2, "op");
  SV_CHECK(op >= 0 && op < static_cast<int64_t>(std::size(kUnaryOpNames)), "ERR_ARGUMENT", "unary: unknown op " + std::to_string(op));
  const int device = common_device({out, x});
  const ExecContext& ctx = op_context(info, device);
  SV_CHECK(out->ref().numel() == x->ref().numel(), "ERR_SHAPE",
           "unary: out " + shape_of(out) + " and x " + shape_of(x) + " differ in size");
  SV_CHECK(out->dtype() == x->dtype(), "ERR_DTYPE", "unary: out and x must share a dtype");
  UnaryArgs args;
  args.out = out->ref();
  args.x = x->ref();
  args.op = static_cast<UnaryOp>(op);
  args.alpha = static_cast<float>(napi::arg_number(info, 3, "alpha"));
  args.beta = static_cast<float>(napi::arg_number(info, 4, "beta"));
  if (device == kCpuDevice) {
    run_on_cpu({out, x}, [ctx, args] { cpu::unary(ctx, args); });
  } else {
    SV_CUDA(cuda::unary(ctx, args));
  }
  return info.Env().Undefined();
}

// matmul(out, a, b, bias | null, transB, alpha, epilogue?)
//   a [..., m, k]; b [k, n] (or [n, k] with transB) shared by every batch, or b [..., k, n] with
//   the same leading dims as a; out [..., m, n]; bias [n]; epilogue: MatmulEpilogue (default none).
SV_EXPORT(op_matmul) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* a = NativeTensor::unwrap(info[1], "a");
  NativeTensor* b = NativeTensor::unwrap(info[2], "b");
  NativeTensor* bias = napi::arg_present(info, 3) ? NativeTensor::unwrap(info[3], "bias") : nullptr;
  bool trans_b = napi::arg_bool(info, 4, "transB");
  float alpha = static_cast<float>(napi::arg_number(info, 5, "alpha"));
  int64_t epilogue = napi::arg_present(info, 6) ? napi::arg_int(info, 6, "epilogue") : 0;
  SV_CHECK(epilogue == 0 || epilogue == 1, "ERR_ARGUMENT",
           "matmul: epilogue must be 0 (none) or 1 (gelu_tanh), got " + std::to_string(epilogue));
  const int device = common_device({out, a, b, bias});
  const ExecContext& ctx = op_context(info, device);
  MatmulArgs args;
  args.out = out->ref();
  args.a = a->ref();
  args.b = b->ref();
  if (bias) args.bias = bias->ref();
  args.trans_b = trans_b;
  args.alpha = alpha;
  args.epilogue = static_cast<MatmulEpilogue>(epilogue);
  SV_CHECK(args.a.ndim >= 2 && args.b.ndim >= 2 && args.out.ndim == args.a.ndim, "ERR_SHAPE",
           "matmul: expected a [..., m, k] and out of a's rank, got a " + args.a.shape_string() + ", out " +
               args.out.shape_string());
  args.m = args.a.size(-2);
  args.k = args.a.size(-1);
  int64_t bk = trans_b ? args.b.size(-1) : args.b.size(-2);
  args.n = trans_b ? args.b.size(-2) : args.b.size(-1);
  SV_CHECK(bk == args.k, "ERR_SHAPE",
           "matmul: inner dimensions differ: a " + args.a.shape_string() + ", b " + args.b.shape_string() +
               (trans_b ? " (transposed)" : ""));
  args.batch = args.a.outer(-2);
  args.a_batch_stride = args.m * args.k;
  if (args.b.ndim == 2) {
    args.b_batch_stride = 0;
  } else {
    SV_CHECK(args.b.ndim == args.a.ndim, "ERR_SHAPE",
             "matmul: b must be 2-D or have a's rank: a " + args.a.shape_string() + ", b " + args.b.shape_string());
    for (int i = 0; i < args.a.ndim - 2; i++) {
      SV_CHECK(args.a.shape[i] == args.b.shape[i], "ERR_SHAPE",
               "matmul: batch dimensions differ: a " + args.a.shape_string() + ", b " + args.b.shape_string());
    }
    args.b_batch_stride = args.k * args.n;
  }
  for (int i = 0; i < args.a.ndim - 2; i++) {
    SV_CHECK(args.out.shape[i] == args.a.shape[i], "ERR_SHAPE", "matmul: out " + args.out.shape_string() +
                                                                    " does not match a " + args.a.shape_string());
  }
  SV_CHECK(args.out.size(-2) == args.m && args.out.size(-1) == args.n, "ERR_SHAPE",
           "matmul: expected out [..., " + std::to_string(args.m) + ", " + std::to_string(args.n) + "], got " +
               args.out.shape_string());
  SV_CHECK(a->dtype() == b->dtype() && out->dtype() == a->dtype(), "ERR_DTYPE",
           std::string("matmul: a, b and out must share a dtype, got ") + dtype_name(a->dtype()) + ", " +
               dtype_name(b->dtype()) + ", " + dtype_name(out->dtype()));
  if (bias) {
    SV_CHECK(args.bias.numel() == args.n, "ERR_SHAPE",
             "matmul: bias must have n = " + std::to_string(args.n) + " elements, got " + args.bias.shape_string());
    SV_CHECK(bias->dtype() == out->dtype(), "ERR_DTYPE", "matmul: bias must share out's dtype");
  }
  if (device == kCpuDevice) {
    run_on_cpu({out, a, b, bias}, [ctx, args] { cpu::matmul(ctx, args); });
  } else {
    SV_CUDA(cuda::matmul(ctx, args));
  }
  return info.Env().Undefined();
}

// softmax(out, x): over the last dimension.
SV_EXPORT(op_softmax) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* x = NativeTensor::unwrap(info[1], "x");
  const int device = common_device({out, x});
  const ExecContext& ctx = op_context(info, device);
  SoftmaxArgs args;
  args.out = out->ref();
  args.x = x->ref();
  SV_CHECK(args.x.ndim >= 1 && out->shape() == x->shape(), "ERR_SHAPE",
           "softmax: out " + shape_of(out) + " must equal x " + shape_of(x));
  SV_CHECK(out->dtype() == x->dtype(), "ERR_DTYPE", "softmax: out and x must share a dtype");
  args.cols = args.x.size(-1);
  args.rows = args.x.outer(-1);
  if (device == kCpuDevice) {
    run_on_cpu({out, x}, [ctx, args] { cpu::softmax(ctx, args); });
  } else {
    SV_CUDA(cuda::softmax(ctx, args));
  }
  return info.Env().Undefined();
}

// reduce(out, x, axis, op): out has x's shape with `axis` removed (or kept as 1).
SV_EXPORT(op_reduce) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  NativeTensor* x = NativeTensor::unwrap(info[1], "x");
  int64_t axis = napi::arg_int(info, 2, "axis");
  int64_t op = napi::arg_int(info, 3, "op");
  SV_CHECK(op >= 0 && op < static_cast<int64_t>(std::size(kReduceOpNames)), "ERR_ARGUMENT", "reduce: unknown op " + std::to_string(op));
  const int device = common_device({out, x});
  const ExecContext& ctx = op_context(info, device);
  ReduceArgs args;
  args.out = out->ref();
  args.x = x->ref();
  args.op = static_cast<ReduceOp>(op);
  SV_CHECK(axis >= 0 && axis < args.x.ndim, "ERR_ARGUMENT",
           "reduce: axis " + std::to_string(axis) + " out of range for " + args.x.shape_string());
  args.outer = args.x.outer(static_cast<int>(axis));
  args.dim = args.x.shape[axis];
  args.inner = args.x.numel() / std::max<int64_t>(1, args.outer * args.dim);
  if (args.outer * args.dim == 0) args.inner = 0;
  SV_CHECK(args.out.numel() == args.outer * args.inner, "ERR_SHAPE",
           "reduce: out " + args.out.shape_string() + " does not fit " + args.x.shape_string() + " reduced over axis " +
               std::to_string(axis));
  SV_CHECK(out->dtype() == x->dtype(), "ERR_DTYPE", "reduce: out and x must share a dtype");
  if (device == kCpuDevice) {
    run_on_cpu({out, x}, [ctx, args] { cpu::reduce(ctx, args); });
  } else {
    SV_CUDA(cuda::reduce(ctx, args));
  }
  return info.Env().Undefined();
}

// fill(out, value)
SV_EXPORT(op_fill) {
  NativeTensor* out = NativeTensor::unwrap(info[0], "out");
  const ExecContext& ctx = op_context(info, out->device());
  FillArgs args;
  args.out = out->ref();
  args.value = napi::arg_number(info, 1, "value");
  if (ctx.device == kCpuDevice) {
    run_on_cpu({out}, [ctx, args] { cpu::fill(ctx, args); });
  } else {
    SV_CUDA(cuda::fill(ctx, args));
  }
  return info.Env().Undefined();
}

// opCodes() -> { binary, unary, reduce }: each family's op names in code order (native/kernels.h).
SV_EXPORT(op_codes) {
  Napi::Env env = info.Env();
  auto names = [&](const auto& list) {
    Napi::Array array = Napi::Array::New(env, std::size(list));
    for (size_t i = 0; i < std::size(list); ++i) array.Set(static_cast<uint32_t>(i), Napi::String::New(env, list[i]));
    return array;
  };
  Napi::Object codes = Napi::Object::New(env);
  codes.Set("binary", names(kBinaryOpNames));
  codes.Set("unary", names(kUnaryOpNames));
  codes.Set("reduce", names(kReduceOpNames));
  return codes;
}

void register_op_codes(Napi::Env env, Napi::Object exports) { exports.Set("opCodes", Napi::Function::New(env, op_codes)); }

void register_core_ops(Napi::Env env, Napi::Object ops) {
  ops.Set("copy", Napi::Function::New(env, op_copy));
  ops.Set("binary", Napi::Function::New(env, op_binary));
  ops.Set("unary", Napi::Function::New(env, op_unary));
  ops.Set("matmul", Napi::Function::New(env, op_matmul));
  ops.Set("softmax", Napi::Function::New(env, op_softmax));
  ops.Set("reduce", Napi::Function::New(env, op_reduce));
  ops.Set("fill", Napi::Function::New(env, op_fill));
}

}  // namespace sv
