// See environment.h: every environment read of the native code goes through here.
#include "environment.h"

#include <cstdlib>

namespace sv {

std::string environment(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

}  // namespace sv
