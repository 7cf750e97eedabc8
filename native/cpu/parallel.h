// A small fork-join pool for the CPU backend. Only the executor thread submits work (ops run one
// at a time, in order), so the pool needs no nesting or work stealing: a parallel_for splits a
// range into chunks that the pool threads and the caller take from a shared counter.
#pragma once
#include <cstdint>
#include <functional>

namespace sv::cpu {

// Number of threads used by parallel_for (the caller included). STEPVIDEO_THREADS overrides it.
int thread_count();

// Runs body(begin, end) over [0, n) in chunks of at least `grain` items, in parallel.
// Exceptions thrown by the body are rethrown on the calling thread (the first one wins).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);

}  // namespace sv::cpu
