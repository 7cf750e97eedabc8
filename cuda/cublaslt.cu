// cuBLASLt loaded at run time (cuda/cublaslt.h): where libcublasLt is looked for, loading it once,
// binding the entry points this project uses, and what `stepvideo info` reports about it.
#include <dlfcn.h>
#include <glob.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "../native/environment.h"
#include "common.cuh"
#include "cublaslt.h"

namespace sv::cuda {

namespace lt {
namespace {

std::string load_error;
std::string loaded_from;

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

std::vector<std::string> library_candidates(const Lookup& lookup) {
  if (std::string explicit_path = lookup.env("STEPVIDEO_CUBLASLT"); !explicit_path.empty()) {
    return {explicit_path};  // explicit: nothing else, so a wrong path is reported, not bypassed
  }
  const char* sonames[] = {"libcublasLt.so.13", "libcublasLt.so.12"};
  std::vector<std::string> out;
  auto add = [&](const std::string& path) {
    if (std::find(out.begin(), out.end(), path) == out.end()) out.push_back(path);
  };
  auto add_folder = [&](const std::string& folder) {
    for (const char* name : sonames) add(folder + "/" + name);
  };
  auto add_toolkit = [&](const std::string& root) {
    add_folder(root + "/lib64");
    add_folder(root + "/" + kTargetDir);
  };
  for (const char* name : sonames) add(name);  // LD_LIBRARY_PATH, rpath and the system cache
  for (const char* var : {"CUDA_PATH", "CUDA_HOME"}) {
    if (std::string root = lookup.env(var); !root.empty()) add_toolkit(root);
  }
  add_toolkit("/usr/local/cuda");
  std::vector<std::string> versioned = lookup.glob("/usr/local/cuda-*");
  std::sort(versioned.begin(), versioned.end(), newer_version);
  for (const std::string& root : versioned) add_toolkit(root);
  // pip wheels: nvidia-cublas (CUDA 13) installs nvidia/cu13/lib, nvidia-cublas-cu12 nvidia/cublas/lib.
  // The active virtual environment and conda first, then the user's and the system's Pythons.
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
        add(site + "/nvidia/cu13/lib/libcublasLt.so.13");
        add_folder(site + "/nvidia/cublas/lib");
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

namespace {

void* open_library() {
  const std::vector<std::string> candidates = library_candidates(process_lookup());
  std::string tried;
  for (const std::string& path : candidates) {
    if (void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
      loaded_from = path;
      return handle;
    }
    // A library that is there but does not load says why (dlerror names it); a missing one is listed.
    const char* reason = dlerror();
    const bool present = path.find('/') != std::string::npos
                             ? access(path.c_str(), F_OK) == 0
                             : reason != nullptr && std::strstr(reason, "cannot open shared object file") == nullptr;
    tried += (tried.empty() ? "" : ", ") + (present && reason ? std::string(reason) : path);
  }
  const bool explicit_path = candidates.size() == 1 && !process_lookup().env("STEPVIDEO_CUBLASLT").empty();
  load_error = explicit_path ? "STEPVIDEO_CUBLASLT does not name a loadable libcublasLt (" + tried + ")"
                             : "libcublasLt not found (tried " + tried + ")";
  return nullptr;
}

template <typename F>
bool bind(void* library, const char* symbol, F* target) {
  *target = reinterpret_cast<F>(dlsym(library, symbol));
  if (*target == nullptr) {
    load_error = std::string("libcublasLt lacks ") + symbol;
    return false;
  }
  return true;
}

}  // namespace

const Api* api(const char** why) {
#if defined(SV_CUDA_EMULATED)
  if (why) *why = "";
  return emulated_api();  // the reference implementation (cuda/emulator/cublaslt.cc)
#endif
  static Api table;
  static const Api* loaded = [] () -> const Api* {
    void* library = open_library();
    if (library == nullptr) return nullptr;
    bool ok = bind(library, "cublasLtCreate", &table.create) &&
              bind(library, "cublasLtMatmulDescCreate", &table.matmul_desc_create) &&
              bind(library, "cublasLtMatmulDescDestroy", &table.matmul_desc_destroy) &&
              bind(library, "cublasLtMatmulDescSetAttribute", &table.matmul_desc_set) &&
              bind(library, "cublasLtMatrixLayoutCreate", &table.layout_create) &&
              bind(library, "cublasLtMatrixLayoutDestroy", &table.layout_destroy) &&
              bind(library, "cublasLtMatrixLayoutSetAttribute", &table.layout_set) &&
              bind(library, "cublasLtMatmulPreferenceCreate", &table.pref_create) &&
              bind(library, "cublasLtMatmulPreferenceDestroy", &table.pref_destroy) &&
              bind(library, "cublasLtMatmulPreferenceSetAttribute", &table.pref_set) &&
              bind(library, "cublasLtMatmulAlgoGetHeuristic", &table.heuristic) &&
              bind(library, "cublasLtMatmul", &table.matmul) &&
              bind(library, "cublasLtGetStatusName", &table.status_name);
    if (!ok) {
      load_error = loaded_from + ": " + load_error;
      loaded_from.clear();
      return nullptr;
    }
    // The file the loader picked (a bare soname resolves through LD_LIBRARY_PATH or the cache).
    Dl_info where;
    if (dladdr(reinterpret_cast<void*>(table.create), &where) != 0 && where.dli_fname != nullptr) loaded_from = where.dli_fname;
    return &table;
  }();
  if (why) *why = load_error.c_str();
  return loaded;
}

std::string library_path() {
#if defined(SV_CUDA_EMULATED)
  return "emulated (cuda/emulator/cublaslt.cc)";
#else
  return api() != nullptr ? loaded_from : "";
#endif
}

}  // namespace lt

CublasLtInfo cublaslt_info() {
  const char* why = nullptr;
  lt::api(&why);
  return {lt::library_path(), why ? why : ""};
}

std::vector<std::string> cublaslt_candidates() { return lt::library_candidates(lt::process_lookup()); }

}  // namespace sv::cuda
