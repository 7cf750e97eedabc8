// N-API glue of the collectives between ranks on several GPUs (cuda/nccl.h): an NCCL group over
// distinct CUDA devices of this process, and its all-to-all (lib/parallel/nccl.ts).
#include <napi.h>

#include <memory>
#include <vector>

#include "dispatch.h"
#include "napi_util.h"
#ifdef SV_WITH_CUDA
#include "../cuda/nccl.h"
#endif

namespace sv {
namespace {

#ifdef SV_WITH_CUDA
// The tensors of an all-to-all argument: rows x columns of tensor handles.
std::vector<std::vector<TensorRef>> tensor_grid(const Napi::Value& value, const char* what) {
  SV_CHECK(value.IsArray(), "ERR_ARGUMENT", std::string(what) + " must be an array of arrays of tensors");
  const Napi::Array rows = value.As<Napi::Array>();
  std::vector<std::vector<TensorRef>> grid(rows.Length());
  for (uint32_t i = 0; i < rows.Length(); i++) {
    const Napi::Value row = rows.Get(i);
    SV_CHECK(row.IsArray(), "ERR_ARGUMENT", std::string(what) + " must be an array of arrays of tensors");
    const Napi::Array parts = row.As<Napi::Array>();
    for (uint32_t j = 0; j < parts.Length(); j++) grid[i].push_back(NativeTensor::unwrap(parts.Get(j), what)->ref());
  }
  return grid;
}
#endif

}  // namespace

// ncclGroupCreate(devices) -> group: one NCCL communicator per device (distinct CUDA devices).
SV_EXPORT(nccl_group_create) {
#ifdef SV_WITH_CUDA
  const std::vector<int64_t> list = napi::arg_int_array(info, 0, "devices");
  const std::vector<int> devices(list.begin(), list.end());
  auto* group = new cuda::NcclGroup(devices);
  return Napi::External<cuda::NcclGroup>::New(info.Env(), group, [](Napi::Env, cuda::NcclGroup* g) { delete g; });
#else
  fail("ERR_DEVICE", "this build of the addon has no CUDA backend");
#endif
}

// ncclAllToAll(group, sends, recvs): sends[s][r] (on rank s's device) to recvs[r][s]; enqueued on
// each device's work stream.
SV_EXPORT(nccl_all_to_all) {
#ifdef SV_WITH_CUDA
  SV_CHECK(info[0].IsExternal(), "ERR_ARGUMENT", "ncclAllToAll: 'group' must come from ncclGroupCreate");
  cuda::NcclGroup* group = info[0].As<Napi::External<cuda::NcclGroup>>().Data();
  group->all_to_all(tensor_grid(info[1], "sends"), tensor_grid(info[2], "recvs"));
  return info.Env().Undefined();
#else
  fail("ERR_DEVICE", "this build of the addon has no CUDA backend");
#endif
}

void register_comm_functions(Napi::Env env, Napi::Object exports) {
  exports.Set("ncclGroupCreate", Napi::Function::New(env, nccl_group_create));
  exports.Set("ncclAllToAll", Napi::Function::New(env, nccl_all_to_all));
}

}  // namespace sv
