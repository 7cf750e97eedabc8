// NCCL, loaded at run time with dlopen like cuBLASLt (cuda/cublaslt.h): the collectives of ranks on
// several GPUs (lib/parallel/communicator.ts). The embedded default never loads it; it is looked for
// only when a job asks for ranks on more than one GPU, or when `stepvideo info` reports. Only the
// types and entry points this project uses are declared, with the values of NVIDIA's nccl.h.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "../native/tensor_ref.h"

namespace sv::cuda::nccl {

using Result = int;  // ncclResult_t; 0 = success
constexpr Result kSuccess = 0;
using Comm = struct ncclComm*;
// ncclDataType_t
constexpr int kUint8 = 1, kFloat16 = 6, kFloat32 = 7, kBfloat16 = 9;

struct Api {
  Result (*get_version)(int*);
  Result (*comm_init_all)(Comm*, int ndev, const int* devlist);
  Result (*comm_destroy)(Comm);
  Result (*group_start)();
  Result (*group_end)();
  Result (*send)(const void*, size_t count, int datatype, int peer, Comm, void* stream);
  Result (*recv)(void*, size_t count, int datatype, int peer, Comm, void* stream);
  const char* (*error_string)(Result);
};

// The loaded API, or nullptr when libnccl.so.2 could not be loaded (then `why` says what was tried).
const Api* api(const char** why = nullptr);

}  // namespace sv::cuda::nccl

namespace sv::cuda {

// For the N-API glue: the file NCCL was loaded from and its version (loading it on the first call;
// path "" when none could be loaded, `why` then says what was tried and what to install), and the
// places it is looked for with the process's environment.
struct NcclInfo {
  std::string path, why;
  int version = 0;  // e.g. 22704 for 2.27.4
};
NcclInfo nccl_info();
std::vector<std::string> nccl_candidates();

// The ranks of one job on distinct CUDA devices of this process (ncclCommInitAll: one communicator
// per device, driven from this one thread). Collectives are enqueued on each device's work stream:
// the Ulysses all-to-all sits on the critical path (attention needs its output), so a separate
// stream would have nothing to overlap with; program order then stays execution order.
class NcclGroup {
 public:
  // ERR_UNSUPPORTED naming what to install when NCCL cannot be loaded; ERR_ARGUMENT for a device twice.
  explicit NcclGroup(const std::vector<int>& devices);
  ~NcclGroup();  // never throws
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  int size() const { return static_cast<int>(devices_.size()); }
  // sends[s][r] (on device s) goes to recvs[r][s] (on device r); every pair has the same dtype and
  // size. Enqueued; returns at once.
  void all_to_all(const std::vector<std::vector<TensorRef>>& sends, const std::vector<std::vector<TensorRef>>& recvs);

 private:
  std::vector<int> devices_;
  std::vector<nccl::Comm> comms_;
};

}  // namespace sv::cuda
