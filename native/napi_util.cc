#include "napi_util.h"

#include <cmath>
#include <limits>

namespace sv::napi {
namespace {
Napi::FunctionReference* error_factory = nullptr;
}

void set_error_factory(const Napi::Function& factory) {
  if (error_factory == nullptr) error_factory = new Napi::FunctionReference();
  *error_factory = Napi::Persistent(factory);
}

Napi::Value make_error(Napi::Env env, const std::string& code, const std::string& message) {
  if (error_factory != nullptr && !error_factory->IsEmpty()) {
    return error_factory->Call({Napi::String::New(env, code), Napi::String::New(env, message)});
  }
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error.Value();
}

static Napi::Value arg_at(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (index >= info.Length()) fail("ERR_ARGUMENT", std::string("missing argument '") + name + "'");
  return info[index];
}

int64_t arg_int(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = arg_at(info, index, name);
  if (value.IsBigInt()) {
    bool lossless = false;
    int64_t result = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) fail("ERR_ARGUMENT", std::string("argument '") + name + "' does not fit in 64 bits");
    return result;
  }
  if (!value.IsNumber()) fail("ERR_ARGUMENT", std::string("argument '") + name + "' must be an integer");
  double number = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(number) || std::floor(number) != number || std::fabs(number) > 9007199254740991.0) {
    fail("ERR_ARGUMENT", std::string("argument '") + name + "' must be an integer");
  }
  return static_cast<int64_t>(number);
}

double arg_number(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = arg_at(info, index, name);
  if (!value.IsNumber()) fail("ERR_ARGUMENT", std::string("argument '") + name + "' must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

bool arg_bool(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = arg_at(info, index, name);
  if (!value.IsBoolean()) fail("ERR_ARGUMENT", std::string("argument '") + name + "' must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

std::string arg_string(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = arg_at(info, index, name);
  if (!value.IsString()) fail("ERR_ARGUMENT", std::string("argument '") + name + "' must be a string");
  return value.As<Napi::String>().Utf8Value();
}

std::vector<int64_t> arg_int_array(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = arg_at(info, index, name);
  if (!value.IsArray()) fail("ERR_ARGUMENT", std::string("argument '") + name + "' must be an array of integers");
  Napi::Array array = value.As<Napi::Array>();
  std::vector<int64_t> result(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value item = array.Get(i);
    if (!item.IsNumber()) fail("ERR_ARGUMENT", std::string("argument '") + name + "' must be an array of integers");
    double number = item.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(number) || std::floor(number) != number) {
      fail("ERR_ARGUMENT", std::string("argument '") + name + "' must be an array of integers");
    }
    result[i] = static_cast<int64_t>(number);
  }
  return result;
}

bool arg_present(const Napi::CallbackInfo& info, size_t index) {
  return index < info.Length() && !info[index].IsUndefined() && !info[index].IsNull();
}

void PromiseWorker::Execute() {
  try {
    run();
  } catch (const sv::Error& error) {
    code_ = error.code();
    message_ = error.what();
    SetError(message_);
  } catch (const std::bad_alloc&) {
    code_ = "ERR_OOM";
    message_ = "host memory exhausted";
    SetError(message_);
  } catch (const std::exception& error) {
    code_ = "ERR_INTERNAL";
    message_ = error.what();
    SetError(message_);
  }
}

void PromiseWorker::OnOK() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  try {
    deferred_.Resolve(result(env));
  } catch (const Napi::Error& error) {
    deferred_.Reject(error.Value());
  } catch (const sv::Error& error) {
    deferred_.Reject(make_error(env, error.code(), error.what()));
  } catch (const std::exception& error) {
    deferred_.Reject(make_error(env, "ERR_INTERNAL", error.what()));
  }
}

void PromiseWorker::OnError(const Napi::Error& error) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (code_.empty()) {
    deferred_.Reject(error.Value());
  } else {
    deferred_.Reject(make_error(env, code_, message_));
  }
}

Napi::Value start(PromiseWorker* worker) {
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace sv::napi
