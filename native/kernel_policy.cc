// Per-device kernel policies (native/kernel_policy.h), behind a lock: ops are enqueued from the
// JavaScript thread, while a policy can be read from a worker finishing an op.
#include "kernel_policy.h"

#include <map>
#include <mutex>

namespace sv {
namespace {

std::mutex lock;
std::map<int, KernelPolicy> policies;

}  // namespace

KernelPolicy kernel_policy(int device) {
  std::lock_guard<std::mutex> guard(lock);
  auto it = policies.find(device);
  return it == policies.end() ? KernelPolicy{} : it->second;
}

void set_kernel_policy(int device, const KernelPolicy& policy) {
  std::lock_guard<std::mutex> guard(lock);
  policies[device] = policy;
}

}  // namespace sv
