// Native errors. Kernels and runtime code (CPU and CUDA alike) throw sv::Error with one of the
// library's stable codes; the N-API boundary turns it into a JS StepVideoError with that code.
#pragma once
#include <stdexcept>
#include <string>

namespace sv {

class Error : public std::runtime_error {
 public:
  Error(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

[[noreturn]] inline void fail(const char* code, const std::string& message) { throw Error(code, message); }

// Argument checks in glue and kernels: a failed check becomes a typed JS error, never a crash.
#define SV_CHECK(condition, code, message)                 \
  do {                                                     \
    if (!(condition)) ::sv::fail((code), (message));       \
  } while (0)

}  // namespace sv
