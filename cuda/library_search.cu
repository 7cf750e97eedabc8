// The library search of cuda/library_search.h.
#include "library_search.h"

#include <dlfcn.h>
#include <glob.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "../native/environment.h"

namespace sv::cuda {
namespace {

// The target folder of a CUDA toolkit's libraries (targets/<this>/lib).
#if defined(__aarch64__)
constexpr const char* kTargetDir = "targets/sbsa-linux/lib";
#else
constexpr const char* kTargetDir = "targets/x86_64-linux/lib";
#endif

// "cuda-12.10" before "cuda-12.9": runs of digits compare as numbers, so the newest folder comes first.
bool newer_version(const std::string& a, const std::string& b) {
  auto digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (!digit(a[i]) || !digit(b[j])) {
      if (a[i] != b[j]) return a[i] > b[j];
      ++i, ++j;
      continue;
    }
    while (i + 1 < a.size() && a[i] == '0' && digit(a[i + 1])) ++i;
    while (j + 1 < b.size() && b[j] == '0' && digit(b[j + 1])) ++j;
    size_t ei = i, ej = j;
    while (ei < a.size() && digit(a[ei])) ++ei;
    while (ej < b.size() && digit(b[ej])) ++ej;
    if (ei - i != ej - j) return ei - i > ej - j;  // more digits: a larger number
    if (int c = a.compare(i, ei - i, b, j, ej - j); c != 0) return c > 0;
    i = ei, j = ej;
  }
  return a.size() - i > b.size() - j;
}

}  // namespace

std::vector<std::string> library_candidates(const LibrarySpec& spec, const Lookup& lookup) {
  if (std::string explicit_path = lookup.env(spec.explicit_env); !explicit_path.empty()) {
    return {explicit_path};  // explicit: nothing else, so a wrong path is reported, not bypassed
  }
  std::vector<std::string> out;
  auto add = [&](const std::string& path) {
    if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(path);
  };
  auto add_folder = [&](const std::string& folder) {
    for (const char* name : spec.sonames) add(folder + "/" + name);
  };
  auto add_toolkit = [&](const std::string& root) {
    add_folder(root + "/lib64");
    add_folder(root + "/" + kTargetDir);
  };
  for (const char* name : spec.sonames) add(name);  // LD_LIBRARY_PATH, rpath and the system cache
  if (spec.in_toolkit) {
    for (const char* var : {"CUDA_PATH", "CUDA_HOME"}) {
      if (std::string root = lookup.env(var); !root.empty()) add_toolkit(root);
    }
    add_toolkit("/usr/local/cuda");
    std::vector<std::string> versioned = lookup.glob("/usr/local/cuda-*");
    std::sort(versioned.begin(), versioned.end(), newer_version);
    for (const std::string& root : versioned) add_toolkit(root);
  }
  // pip wheels: the active virtual environment and conda first, then the user's and the system's Pythons.
  std::vector<std::string> prefixes;
  for (const char* var : {"VIRTUAL_ENV", "CONDA_PREFIX"}) {
    if (std::string prefix = lookup.env(var); !prefix.empty()) prefixes.push_back(prefix + "/lib");
  }
  if (std::string home = lookup.env("HOME"); !home.empty()) prefixes.push_back(home + "/.local/lib");
  prefixes.push_back("/usr/local/lib");
  prefixes.push_back("/usr/lib");
  for (const std::string& prefix : prefixes) {
    for (const char* packages : {"site-packages", "dist-packages"}) {
      for (const std::string& site : lookup.glob(prefix + "/python3*/" + packages)) {
        for (const std::string& path : spec.wheel_paths) {
          if (path.find(".so") != std::string::npos) {
            add(site + "/" + path);
          } else {
            add_folder(site + "/" + path);
          }
        }
      }
    }
  }
  if (std::string conda = lookup.env("CONDA_PREFIX"); !conda.empty()) add_folder(conda + "/lib");
  return out;
}

Lookup process_lookup() {
  Lookup lookup;
  lookup.env = [](const char* name) { return environment(name); };
  lookup.glob = [](const std::string& pattern) {
    std::vector<std::string> found;
    glob_t matches;
    if (::glob(pattern.c_str(), GLOB_ONLYDIR, nullptr, &matches) == 0) {
      for (size_t i = 0; i < matches.gl_pathc; ++i) found.emplace_back(matches.gl_pathv[i]);
    }
    globfree(&matches);
    return found;
  };
  return lookup;
}

void* open_library(const LibrarySpec& spec, std::string* loaded_from, std::string* error) {
  const Lookup lookup = process_lookup();
  const std::vector<std::string> candidates = library_candidates(spec, lookup);
  std::string tried;
  for (const std::string& path : candidates) {
    if (void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      *loaded_from = path;
      return handle;
    }
    // A library that is there but does not load says why (dlerror names it); a missing one is listed.
    const char* reason = dlerror();
    const bool present = path.find('/') != std::string::npos
                             ? access(path.c_str(), F_OK) == 0
                             : reason != nullptr && std::strstr(reason, "cannot open shared object file") == nullptr;
    tried += (tried.empty() ? "" : ", ") + (present && reason ? std::string(reason) : path);
  }
  const bool explicit_path = !lookup.env(spec.explicit_env).empty();
  *error = explicit_path ? std::string(spec.explicit_env) + " does not name a loadable " + spec.name + " (" + tried + ")"
                         : std::string(spec.name) + " not found (tried " + tried + ")";
  return nullptr;
}

bool SymbolBinder::finish(bool ok, void* symbol) {
  if (!ok) {
    *error_ = *loaded_from_ + ": " + *error_;
    loaded_from_->clear();
    return false;
  }
  Dl_info where;
  if (dladdr(symbol, &where) != 0 && where.dli_fname != nullptr) *loaded_from_ = where.dli_fname;
  return true;
}

}  // namespace sv::cuda
