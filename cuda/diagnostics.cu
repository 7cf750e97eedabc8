// A kernel that faults on purpose, so tests can prove what a GPU fault does to the process: the
// device becomes unusable (a sticky error), every later call says why, and nothing crashes.
#include "common.cuh"

namespace sv::cuda {
namespace {

__global__ void trap_kernel() { __trap(); }

}  // namespace

void launch_fault(const ExecContext& ctx) {
  require_healthy(ctx.device);
  use_device(ctx.device);
  launch(SV_HERE, trap_kernel, 1, 1, 0, work_stream(ctx));
}

}  // namespace sv::cuda
