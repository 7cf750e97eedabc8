// Where the optional NVIDIA libraries the addon loads at run time (cuBLASLt, NCCL) are looked for,
// and loading the first that loads: one search for all of them, so `stepvideo info` and the
// errors list the same places in the same order for each.
#pragma once
#include <dlfcn.h>

#include <functional>
#include <string>
#include <vector>

namespace sv::cuda {

// What the library search reads from the host, passed in so that the search order is a function
// of it alone: environment variables ("" when unset) and the folders matching a glob pattern.
struct Lookup {
  std::function<std::string(const char*)> env;
  std::function<std::vector<std::string>(const std::string&)> glob;
};
// The process's environment and file system.
Lookup process_lookup();

struct LibrarySpec {
  const char* name;                  // "libcublasLt", for messages
  const char* explicit_env;          // a variable naming the file, used alone when set
  std::vector<const char*> sonames;  // newest first
  bool in_toolkit;                   // shipped with the CUDA toolkit (lib64/, targets/<arch>/lib/)
  // pip wheels, relative to site-packages: a file (ending in a soname) or a folder holding the sonames.
  std::vector<std::string> wheel_paths;
};

// In order: `explicit_env` alone when set; otherwise the sonames through the dynamic loader
// (LD_LIBRARY_PATH, rpath, the system cache), then for toolkit libraries CUDA_PATH / CUDA_HOME,
// /usr/local/cuda and /usr/local/cuda-* (newest first), then the pip wheels in the site-packages of
// the active virtual environment or conda, the user's and the system's Pythons, then $CONDA_PREFIX/lib.
std::vector<std::string> library_candidates(const LibrarySpec& spec, const Lookup& lookup);

// dlopens the first candidate that loads and returns its handle (`loaded_from` names it); nullptr
// when none does, with `error` saying what was tried (a file that is there but does not load says why).
void* open_library(const LibrarySpec& spec, std::string* loaded_from, std::string* error);

// Binds the entry points of a library open_library loaded: call it per symbol, then finish().
class SymbolBinder {
 public:
  SymbolBinder(void* library, const char* name, std::string* loaded_from, std::string* error)
      : library_(library), name_(name), loaded_from_(loaded_from), error_(error) {}
  template <typename F>
  bool operator()(const char* symbol, F* target) {
    *target = reinterpret_cast<F>(dlsym(library_, symbol));
    if (*target == nullptr) *error_ = std::string(name_) + " lacks " + symbol;
    return *target != nullptr;
  }
  // ok: every symbol bound; `loaded_from` becomes the file `symbol` came from (a bare soname
  // resolves through LD_LIBRARY_PATH or the cache). Otherwise the error names the file, and false.
  bool finish(bool ok, void* symbol);

 private:
  void* library_;
  const char* name_;
  std::string* loaded_from_;
  std::string* error_;
};

}  // namespace sv::cuda
