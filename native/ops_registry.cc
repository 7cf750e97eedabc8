// Registers the model-level kernel families (one glue file per family). Adding a family means
// adding its register function here and its sources to native/sources.json.
#include <napi.h>

namespace sv {

void register_norm_ops(Napi::Env env, Napi::Object exports);
void register_attention_ops(Napi::Env env, Napi::Object exports);
void register_conv_ops(Napi::Env env, Napi::Object exports); void register_vae_ops(Napi::Env env, Napi::Object exports);
void register_random_ops(Napi::Env env, Napi::Object exports); void register_sampler_ops(Napi::Env env, Napi::Object exports);
void register_rope_ops(Napi::Env env, Napi::Object exports);
void register_embedding_ops(Napi::Env env, Napi::Object exports);
void register_swiglu_ops(Napi::Env env, Napi::Object exports);
void register_fp8_ops(Napi::Env env, Napi::Object exports); void register_linear_ops(Napi::Env env, Napi::Object exports); void register_perf_functions(Napi::Env env, Napi::Object exports);

void register_model_ops(Napi::Env env, Napi::Object exports) {
  register_norm_ops(env, exports);
  register_attention_ops(env, exports);
  register_conv_ops(env, exports); register_vae_ops(env, exports);
  register_random_ops(env, exports); register_sampler_ops(env, exports);
  register_rope_ops(env, exports);
  register_embedding_ops(env, exports);
  register_swiglu_ops(env, exports);
  register_fp8_ops(env, exports); register_linear_ops(env, exports); register_perf_functions(env, exports);
}

}  // namespace sv
