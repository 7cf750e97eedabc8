// The CPU backend's "stream": one thread that runs queued jobs in submission order, so CPU ops
// behave like CUDA launches (enqueue now, run later, read back asynchronously) and the JS thread
// never does heavy compute. Jobs parallelise internally through cpu::parallel_for.
#pragma once
#include <functional>
#include <future>

namespace sv::executor {

void enqueue(std::function<void()> job);

// A future that becomes ready once every job enqueued before it has run. If a job failed since
// the last fence, the future carries that job's exception (reported once, then cleared).
std::future<void> fence();

// Jobs queued but not yet finished (for diagnostics and tests).
size_t pending();

}  // namespace sv::executor
