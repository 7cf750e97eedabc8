// N-API helpers shared by every glue file: turning sv::Error into the library's JS error class,
// guarding exported functions so no C++ exception escapes, argument readers, and a promise-based
// async worker for anything that waits (device sync, read-back, file loads).
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "error.h"

namespace sv::napi {

// Registered once from JS (setErrorFactory): (code, message) => StepVideoError.
void set_error_factory(const Napi::Function& factory);

// Builds the JS error object for a code and message (a plain Error with .code if no factory yet).
Napi::Value make_error(Napi::Env env, const std::string& code, const std::string& message);

// Runs `body`, converting C++ exceptions into thrown JS errors of the library's class.
template <typename Body>
Napi::Value guarded(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const sv::Error& error) {
    throw Napi::Error(env, make_error(env, error.code(), error.what()));
  } catch (const std::bad_alloc&) {
    throw Napi::Error(env, make_error(env, "ERR_OOM", "host memory exhausted"));
  } catch (const std::exception& error) {
    throw Napi::Error(env, make_error(env, "ERR_INTERNAL", error.what()));
  }
}

// Declares an exported function whose body runs under guarded().
#define SV_EXPORT(name)                                                              \
  static Napi::Value name##_impl(const Napi::CallbackInfo& info);                     \
  Napi::Value name(const Napi::CallbackInfo& info) {                                  \
    return ::sv::napi::guarded(info.Env(), [&]() { return name##_impl(info); });      \
  }                                                                                   \
  static Napi::Value name##_impl(const Napi::CallbackInfo& info)

// ---- argument readers: each failure is ERR_ARGUMENT naming the argument ----

int64_t arg_int(const Napi::CallbackInfo& info, size_t index, const char* name);
double arg_number(const Napi::CallbackInfo& info, size_t index, const char* name);
bool arg_bool(const Napi::CallbackInfo& info, size_t index, const char* name);
std::string arg_string(const Napi::CallbackInfo& info, size_t index, const char* name);
std::vector<int64_t> arg_int_array(const Napi::CallbackInfo& info, size_t index, const char* name);
bool arg_present(const Napi::CallbackInfo& info, size_t index);

// ---- promise worker ----

// Subclasses override run() (on a libuv thread; may throw sv::Error) and optionally result()
// (on the JS thread). The promise rejects with the library's error class on failure.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  explicit PromiseWorker(Napi::Env env) : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

 protected:
  virtual void run() = 0;
  virtual Napi::Value result(Napi::Env env) { return env.Undefined(); }

 private:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& error) override;

  Napi::Promise::Deferred deferred_;
  std::string code_;
  std::string message_;
};

// Queues the worker and returns its promise.
Napi::Value start(PromiseWorker* worker);

}  // namespace sv::napi
