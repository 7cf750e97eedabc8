#include "tensor_handle.h"

#include <string>

#include "napi_util.h"

namespace sv {
namespace {
Napi::FunctionReference* constructor = nullptr;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}
}  // namespace

int64_t checked_numel(const std::vector<int64_t>& shape, const char* what) {
  SV_CHECK(shape.size() <= static_cast<size_t>(kMaxDims), "ERR_SHAPE",
           std::string(what) + ": rank must be at most " + std::to_string(kMaxDims) + ", got " + shape_text(shape));
  int64_t numel = 1;
  for (int64_t dim : shape) {
    SV_CHECK(dim >= 0, "ERR_SHAPE", std::string(what) + ": negative dimension in " + shape_text(shape));
    SV_CHECK(dim == 0 || numel <= (int64_t{1} << 48) / dim, "ERR_SHAPE",
             std::string(what) + ": shape too large " + shape_text(shape));
    numel *= dim;
  }
  return numel;
}

Napi::Function NativeTensor::define(Napi::Env env) {
  Napi::Function fn = DefineClass(env, "NativeTensor",
                                  {
                                      InstanceMethod<&NativeTensor::dispose>("dispose"),
                                      InstanceMethod<&NativeTensor::view>("view"),
                                      InstanceMethod<&NativeTensor::shares_storage_with>("sharesStorageWith"),
                                      InstanceAccessor<&NativeTensor::is_disposed>("disposed"),
                                      InstanceAccessor<&NativeTensor::byte_length>("byteLength"),
                                  });
  constructor = new Napi::FunctionReference(Napi::Persistent(fn));
  return fn;
}

// new NativeTensor(device, dtypeCode, shape[, pinned]) allocates (pinned: page-locked host memory,
// device must be -1); new NativeTensor(External) is internal (used by view() to make a handle that
// is filled in afterwards).
NativeTensor::NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {
  if (info.Length() == 1 && info[0].IsExternal()) return;
  napi::guarded(info.Env(), [&]() -> Napi::Value {
    int64_t device = napi::arg_int(info, 0, "device");
    int64_t dtype = napi::arg_int(info, 1, "dtype");
    SV_CHECK(dtype_valid(static_cast<int32_t>(dtype)), "ERR_DTYPE", "unknown dtype code " + std::to_string(dtype));
    shape_ = napi::arg_int_array(info, 2, "shape");
    dtype_ = static_cast<DType>(dtype);
    int64_t numel = checked_numel(shape_, "tensor");
    const size_t bytes = static_cast<size_t>(numel) * dtype_size(dtype_);
    const bool pinned = napi::arg_present(info, 3) && napi::arg_bool(info, 3, "pinned");
    SV_CHECK(!pinned || device == kCpuDevice, "ERR_DEVICE", "only host tensors can be pinned");
    storage_ = pinned ? Storage::create_pinned_host(bytes) : Storage::create(static_cast<int>(device), bytes);
    return info.Env().Undefined();
  });
}

NativeTensor* NativeTensor::unwrap(const Napi::Value& value, const char* what) {
  if (!value.IsObject() || constructor == nullptr || !value.As<Napi::Object>().InstanceOf(constructor->Value())) {
    fail("ERR_ARGUMENT", std::string("'") + what + "' is not a tensor");
  }
  NativeTensor* tensor = Napi::ObjectWrap<NativeTensor>::Unwrap(value.As<Napi::Object>());
  SV_CHECK(tensor->storage_ != nullptr, "ERR_DISPOSED", std::string("tensor '") + what + "' was used after dispose()");
  return tensor;
}

NativeTensor* optional_tensor(const Napi::CallbackInfo& info, size_t index, const char* what) {
  if (!napi::arg_present(info, index)) return nullptr;
  return NativeTensor::unwrap(info[index], what);
}

size_t NativeTensor::bytes() const {
  int64_t numel = 1;
  for (int64_t d : shape_) numel *= d;
  return static_cast<size_t>(numel) * dtype_size(dtype_);
}

TensorRef NativeTensor::ref() const {
  TensorRef r;
  r.data = static_cast<char*>(storage_->data()) + offset_;
  r.dtype = dtype_;
  r.ndim = static_cast<int32_t>(shape_.size());
  r.device = storage_->device();
  for (size_t i = 0; i < shape_.size(); i++) r.shape[i] = shape_[i];
  return r;
}

Napi::Value NativeTensor::dispose(const Napi::CallbackInfo& info) {
  storage_.reset();
  return info.Env().Undefined();
}

Napi::Value NativeTensor::is_disposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), storage_ == nullptr);
}

Napi::Value NativeTensor::byte_length(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), storage_ ? static_cast<double>(bytes()) : 0.0);
}

Napi::Value NativeTensor::shares_storage_with(const Napi::CallbackInfo& info) {
  return napi::guarded(info.Env(), [&]() -> Napi::Value {
    NativeTensor* other = unwrap(info[0], "other");
    return Napi::Boolean::New(info.Env(), storage_ != nullptr && storage_ == other->storage_);
  });
}

// view(dtypeCode, shape, byteOffset): another handle onto [byteOffset, byteOffset + bytes) of this
// handle's bytes. Used for reshape (same bytes), outer-dimension slices and bit reinterpretation.
Napi::Value NativeTensor::view(const Napi::CallbackInfo& info) {
  return napi::guarded(info.Env(), [&]() -> Napi::Value {
    SV_CHECK(storage_ != nullptr, "ERR_DISPOSED", "tensor was used after dispose()");
    int64_t dtype = napi::arg_int(info, 0, "dtype");
    SV_CHECK(dtype_valid(static_cast<int32_t>(dtype)), "ERR_DTYPE", "unknown dtype code " + std::to_string(dtype));
    std::vector<int64_t> shape = napi::arg_int_array(info, 1, "shape");
    int64_t byte_offset = napi::arg_int(info, 2, "byteOffset");
    int64_t numel = checked_numel(shape, "view");
    size_t view_bytes = static_cast<size_t>(numel) * dtype_size(static_cast<DType>(dtype));
    SV_CHECK(byte_offset >= 0 && static_cast<size_t>(byte_offset) + view_bytes <= bytes(), "ERR_SHAPE",
             "view of " + std::to_string(view_bytes) + " bytes at offset " + std::to_string(byte_offset) +
                 " does not fit in a tensor of " + std::to_string(bytes()) + " bytes");
    SV_CHECK((offset_ + static_cast<size_t>(byte_offset)) % dtype_size(static_cast<DType>(dtype)) == 0, "ERR_SHAPE",
             "view offset is not aligned to its element size");
    Napi::Object object = constructor->New({Napi::External<void>::New(info.Env(), nullptr)});
    NativeTensor* result = Napi::ObjectWrap<NativeTensor>::Unwrap(object);
    result->storage_ = storage_;
    result->offset_ = offset_ + static_cast<size_t>(byte_offset);
    result->dtype_ = static_cast<DType>(dtype);
    result->shape_ = shape;
    return object;
  });
}

}  // namespace sv
