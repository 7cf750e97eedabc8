// Registers the model-level kernel families (one glue file per family) as methods of the
// execution context (`ops` is NativeContext's prototype, see addon.cc). Adding a family means
// adding its register function here and its sources to native/sources.json.
#include <napi.h>

namespace sv {

void register_norm_ops(Napi::Env env, Napi::Object ops);
void register_residual_ops(Napi::Env env, Napi::Object ops);
void register_attention_ops(Napi::Env env, Napi::Object ops);
void register_conv_ops(Napi::Env env, Napi::Object ops);
void register_vae_ops(Napi::Env env, Napi::Object ops);
void register_random_ops(Napi::Env env, Napi::Object ops);
void register_sampler_ops(Napi::Env env, Napi::Object ops);
void register_split_heads_ops(Napi::Env env, Napi::Object ops);
void register_embedding_ops(Napi::Env env, Napi::Object ops);
void register_swiglu_ops(Napi::Env env, Napi::Object ops);
void register_fp8_ops(Napi::Env env, Napi::Object ops);
void register_linear_ops(Napi::Env env, Napi::Object ops);

void register_model_ops(Napi::Env env, Napi::Object ops) {
  register_norm_ops(env, ops);
  register_residual_ops(env, ops);
  register_attention_ops(env, ops);
  register_conv_ops(env, ops);
  register_vae_ops(env, ops);
  register_random_ops(env, ops);
  register_sampler_ops(env, ops);
  register_split_heads_ops(env, ops);
  register_embedding_ops(env, ops);
  register_swiglu_ops(env, ops);
  register_fp8_ops(env, ops);
  register_linear_ops(env, ops);
}

}  // namespace sv
