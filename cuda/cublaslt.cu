// cuBLASLt loaded at run time (cuda/cublaslt.h): loading it once from where cuda/library_search.h
// looks, binding the entry points this project uses, and what `stepvideo info` reports about it.
#include <dlfcn.h>

#include <string>
#include <vector>

#include "common.cuh"
#include "cublaslt.h"
#include "library_search.h"

namespace sv::cuda {

namespace lt {
namespace {

std::string load_error;
std::string loaded_from;

const LibrarySpec kCublasLt{
    "libcublasLt",
    "STEPVIDEO_CUBLASLT",
    {"libcublasLt.so.13", "libcublasLt.so.12"},
    true,
    // nvidia-cublas (CUDA 13) installs nvidia/cu13/lib, nvidia-cublas-cu12 nvidia/cublas/lib.
    {"nvidia/cu13/lib/libcublasLt.so.13", "nvidia/cublas/lib"},
};

}  // namespace

std::vector<std::string> library_candidates(const Lookup& lookup) { return cuda::library_candidates(kCublasLt, lookup); }

namespace {

void* open_cublaslt() { return open_library(kCublasLt, &loaded_from, &load_error); }

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
    void* library = open_cublaslt();
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

std::vector<std::string> cublaslt_candidates() { return lt::library_candidates(process_lookup()); }

}  // namespace sv::cuda
