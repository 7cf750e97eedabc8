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
    SymbolBinder bind(library, "libcublasLt", &loaded_from, &load_error);
    bool ok = bind("cublasLtCreate", &table.create) &&
              bind("cublasLtMatmulDescCreate", &table.matmul_desc_create) &&
              bind("cublasLtMatmulDescDestroy", &table.matmul_desc_destroy) &&
              bind("cublasLtMatmulDescSetAttribute", &table.matmul_desc_set) &&
              bind("cublasLtMatrixLayoutCreate", &table.layout_create) &&
              bind("cublasLtMatrixLayoutDestroy", &table.layout_destroy) &&
              bind("cublasLtMatrixLayoutSetAttribute", &table.layout_set) &&
              bind("cublasLtMatmulPreferenceCreate", &table.pref_create) &&
              bind("cublasLtMatmulPreferenceDestroy", &table.pref_destroy) &&
              bind("cublasLtMatmulPreferenceSetAttribute", &table.pref_set) &&
              bind("cublasLtMatmulAlgoGetHeuristic", &table.heuristic) &&
              bind("cublasLtMatmul", &table.matmul) &&
              bind("cublasLtGetStatusName", &table.status_name);
    if (!bind.finish(ok, reinterpret_cast<void*>(table.create))) return nullptr;
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
