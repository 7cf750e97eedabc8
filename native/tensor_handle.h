// NativeTensor: the JS-visible handle to a block of device or host memory with a dtype and shape.
// Handles are always contiguous; `view` makes another handle onto the same storage (a reshape or
// an outer-dimension slice) without copying. dispose() drops this handle's reference at once;
// the memory goes when its last user (another view, or a queued CPU job) lets go.
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "storage.h"
#include "tensor_ref.h"

namespace sv {

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit NativeTensor(const Napi::CallbackInfo& info);

  // The handle behind a JS value, or ERR_ARGUMENT / ERR_DISPOSED naming `what`.
  static NativeTensor* unwrap(const Napi::Value& value, const char* what);

  TensorRef ref() const;
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  int device() const { return storage_ ? storage_->device() : kCpuDevice; }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  size_t bytes() const;

 private:
  Napi::Value dispose(const Napi::CallbackInfo& info);
  Napi::Value view(const Napi::CallbackInfo& info);
  Napi::Value is_disposed(const Napi::CallbackInfo& info);
  Napi::Value byte_length(const Napi::CallbackInfo& info);
  Napi::Value shares_storage_with(const Napi::CallbackInfo& info);

  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes from the start of storage_
  DType dtype_ = DType::f32;
  std::vector<int64_t> shape_;
};

// The tensor argument at `index`, or nullptr when it is absent/undefined/null.
NativeTensor* optional_tensor(const Napi::CallbackInfo& info, size_t index, const char* what);

// The kernel's view of an optional tensor: data == nullptr when it is absent.
inline TensorRef optional_ref(const NativeTensor* t) { return t ? t->ref() : TensorRef{}; }

// Validates a shape (rank <= kMaxDims, non-negative dims, no overflow) and returns its numel.
int64_t checked_numel(const std::vector<int64_t>& shape, const char* what);

}  // namespace sv
