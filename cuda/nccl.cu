// NCCL loaded at run time (cuda/nccl.h) from where cuda/library_search.h looks.
#include "nccl.h"

#include <dlfcn.h>

#include "library_search.h"

namespace sv::cuda {
namespace nccl {
namespace {

const LibrarySpec kNccl{
    "libnccl",
    "STEPVIDEO_NCCL",
    {"libnccl.so.2"},
    false,  // not part of the CUDA toolkit: Debian's libnccl2, NVIDIA's repositories, or the pip wheels
    {"nvidia/nccl/lib", "nvidia/cu13/lib"},
};

std::string load_error;
std::string loaded_from;

template <typename F>
bool bind(void* library, const char* symbol, F* target) {
  *target = reinterpret_cast<F>(dlsym(library, symbol));
  if (*target == nullptr) load_error = std::string("libnccl lacks ") + symbol;
  return *target != nullptr;
}

}  // namespace

const Api* api(const char** why) {
#if defined(SV_CUDA_EMULATED)
  if (why) *why = "the emulated CUDA device has no NCCL (one device: ranks exchange by copies)";
  return nullptr;
#endif
  static Api table;
  static const Api* loaded = []() -> const Api* {
    void* library = open_library(kNccl, &loaded_from, &load_error);
    if (library == nullptr) return nullptr;
    const bool ok = bind(library, "ncclGetVersion", &table.get_version) && bind(library, "ncclCommInitAll", &table.comm_init_all) &&
                    bind(library, "ncclCommDestroy", &table.comm_destroy) && bind(library, "ncclGroupStart", &table.group_start) &&
                    bind(library, "ncclGroupEnd", &table.group_end) && bind(library, "ncclSend", &table.send) &&
                    bind(library, "ncclRecv", &table.recv) && bind(library, "ncclGetErrorString", &table.error_string);
    if (!ok) {
      load_error = loaded_from + ": " + load_error;
      loaded_from.clear();
      return nullptr;
    }
    Dl_info where;
    if (dladdr(reinterpret_cast<void*>(table.get_version), &where) != 0 && where.dli_fname != nullptr) loaded_from = where.dli_fname;
    return &table;
  }();
  if (why) *why = load_error.c_str();
  return loaded;
}

}  // namespace nccl

NcclInfo nccl_info() {
  NcclInfo info;
  const char* why = nullptr;
  const nccl::Api* api = nccl::api(&why);
  info.why = why ? why : "";
  if (api == nullptr) return info;
  info.path = nccl::loaded_from;
  if (api->get_version(&info.version) != nccl::kSuccess) info.version = 0;
  return info;
}

std::vector<std::string> nccl_candidates() { return library_candidates(nccl::kNccl, process_lookup()); }

}  // namespace sv::cuda
