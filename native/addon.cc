// Module entry point: registers the tensor handle and execution context classes, the ops as
// methods of the context, and every family of plain functions.
#include <napi.h>

#include "tensor_handle.h"

namespace sv {
Napi::Function define_context_class(Napi::Env env);
void register_core_ops(Napi::Env env, Napi::Object ops);
void register_model_ops(Napi::Env env, Napi::Object ops);
void register_op_codes(Napi::Env env, Napi::Object exports);
void register_device_functions(Napi::Env env, Napi::Object exports);
void register_io_functions(Napi::Env env, Napi::Object exports);
void register_diagnostics_functions(Napi::Env env, Napi::Object exports);
void register_comm_functions(Napi::Env env, Napi::Object exports);
}  // namespace sv

static Napi::Object init(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeTensor", sv::NativeTensor::define(env));
  Napi::Function context = sv::define_context_class(env);
  Napi::Object ops = context.Get("prototype").As<Napi::Object>();
  sv::register_core_ops(env, ops);
  sv::register_model_ops(env, ops);
  exports.Set("NativeContext", context);
  sv::register_op_codes(env, exports);
  sv::register_device_functions(env, exports);
  sv::register_io_functions(env, exports);
  sv::register_diagnostics_functions(env, exports);
  sv::register_comm_functions(env, exports);
  Napi::Object build = Napi::Object::New(env);
#ifdef SV_WITH_CUDA
  build.Set("cuda", Napi::Boolean::New(env, true));
#ifdef SV_CUDA_EMULATED
  build.Set("cudaEmulated", Napi::Boolean::New(env, true));
#else
  build.Set("cudaEmulated", Napi::Boolean::New(env, false));
#endif
  build.Set("cudaArchitectures", Napi::String::New(env, SV_CUDA_ARCHS));
#else
  build.Set("cuda", Napi::Boolean::New(env, false));
  build.Set("cudaEmulated", Napi::Boolean::New(env, false));
  build.Set("cudaArchitectures", Napi::String::New(env, ""));
#endif
  build.Set("napiVersion", Napi::Number::New(env, NAPI_VERSION));
  exports.Set("build", build);
  return exports;
}

NODE_API_MODULE(stepvideo, init)
