// NCCL loaded at run time (cuda/nccl.h) from where cuda/library_search.h looks.
#include "nccl.h"

#include <dlfcn.h>

#include "common.cuh"
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
    SymbolBinder bind(library, "libnccl", &loaded_from, &load_error);
    const bool ok = bind("ncclGetVersion", &table.get_version) && bind("ncclCommInitAll", &table.comm_init_all) &&
                    bind("ncclCommDestroy", &table.comm_destroy) && bind("ncclGroupStart", &table.group_start) &&
                    bind("ncclGroupEnd", &table.group_end) && bind("ncclSend", &table.send) &&
                    bind("ncclRecv", &table.recv) && bind("ncclGetErrorString", &table.error_string);
    if (!bind.finish(ok, reinterpret_cast<void*>(table.get_version))) return nullptr;
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

namespace {

void nccl_check(const nccl::Api& api, nccl::Result result, const char* what) {
  if (result != nccl::kSuccess) fail("ERR_CUDA", std::string("NCCL ") + what + " failed: " + api.error_string(result));
}

int nccl_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return nccl::kFloat32;
    case DType::bf16: return nccl::kBfloat16;
    case DType::f16: return nccl::kFloat16;
    default: return nccl::kUint8;  // moved as bytes
  }
}

}  // namespace

NcclGroup::NcclGroup(const std::vector<int>& devices) : devices_(devices) {
  const char* why = nullptr;
  const nccl::Api* api = nccl::api(&why);
  SV_CHECK(api != nullptr, "ERR_UNSUPPORTED",
           std::string("ranks on several GPUs need NCCL: ") + why +
               ". Install NCCL 2 (Debian/Ubuntu: apt install libnccl2), or pip install nvidia-nccl-cu12, or set STEPVIDEO_NCCL=/path/libnccl.so.2");
  for (size_t i = 0; i < devices.size(); i++) {
    for (size_t j = 0; j < i; j++) {
      SV_CHECK(devices[i] != devices[j], "ERR_ARGUMENT", "an NCCL group has one rank per device; cuda:" + std::to_string(devices[i]) + " is named twice");
    }
    require_healthy(devices[i]);
  }
  comms_.assign(devices.size(), nullptr);
  nccl_check(*api, api->comm_init_all(comms_.data(), static_cast<int>(devices.size()), devices.data()), "CommInitAll");
}

NcclGroup::~NcclGroup() {
  const nccl::Api* api = nccl::api();
  if (api == nullptr) return;
  for (nccl::Comm comm : comms_)
    if (comm != nullptr) api->comm_destroy(comm);
}

void NcclGroup::all_to_all(const std::vector<std::vector<TensorRef>>& sends, const std::vector<std::vector<TensorRef>>& recvs) {
  const nccl::Api& api = *nccl::api();
  const size_t n = devices_.size();
  SV_CHECK(sends.size() == n && recvs.size() == n, "ERR_ARGUMENT", "NCCL all-to-all: one row of parts per rank");
  for (size_t s = 0; s < n; s++) {
    SV_CHECK(sends[s].size() == n && recvs[s].size() == n, "ERR_ARGUMENT", "NCCL all-to-all: one part per rank in every row");
    for (size_t r = 0; r < n; r++) {
      const TensorRef& out = sends[s][r];
      const TensorRef& in = recvs[r][s];
      SV_CHECK(out.device == devices_[s] && in.device == devices_[r], "ERR_DEVICE", "NCCL all-to-all: a part is not on its rank's device");
      SV_CHECK(out.dtype == in.dtype && out.numel() == in.numel(), "ERR_SHAPE",
               "NCCL all-to-all: rank " + std::to_string(s) + " sends " + out.shape_string() + " to rank " + std::to_string(r) +
                   ", which receives " + in.shape_string());
    }
  }
  nccl_check(api, api.group_start(), "GroupStart");
  try {
    for (size_t s = 0; s < n; s++) {
      void* stream = device_context(devices_[s], KernelPolicy{}).work_stream;
      for (size_t r = 0; r < n; r++) {
        const TensorRef& out = sends[s][r];
        const TensorRef& in = recvs[s][r];
        const bool bytes = nccl_type(out.dtype) == nccl::kUint8;
        const size_t count = static_cast<size_t>(out.numel()) * (bytes ? dtype_size(out.dtype) : 1);
        nccl_check(api, api.send(out.data, count, nccl_type(out.dtype), static_cast<int>(r), comms_[s], stream), "Send");
        const size_t in_count = static_cast<size_t>(in.numel()) * (bytes ? dtype_size(in.dtype) : 1);
        nccl_check(api, api.recv(in.data, in_count, nccl_type(in.dtype), static_cast<int>(r), comms_[s], stream), "Recv");
      }
    }
  } catch (...) {
    api.group_end();
    throw;
  }
  nccl_check(api, api.group_end(), "GroupEnd");
}

}  // namespace sv::cuda
