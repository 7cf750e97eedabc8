#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../environment.h"

namespace sv::cpu {
namespace {

class Pool {
 public:
  explicit Pool(int threads) : size_(std::max(1, threads)) {
    for (int i = 1; i < size_; i++) workers_.emplace_back([this] { worker_loop(); });
  }

  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      generation_++;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
  }

  int size() const { return size_; }

  void run(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
    if (n <= 0) return;
    grain = std::max<int64_t>(1, grain);
    int64_t chunks = (n + grain - 1) / grain;
    if (size_ == 1 || chunks == 1) {
      body(0, n);
      return;
    }
    // More chunks than threads balances uneven work; keep each chunk at least `grain` long.
    int64_t target = std::min<int64_t>(chunks, static_cast<int64_t>(size_) * 4);
    int64_t chunk = (n + target - 1) / target;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      body_ = &body;
      n_ = n;
      chunk_ = chunk;
      next_.store(0);
      error_ = nullptr;
      active_ = static_cast<int>(workers_.size());
      generation_++;
    }
    wake_.notify_all();
    drain();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return active_ == 0; });
    body_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void drain() {
    for (;;) {
      int64_t begin = next_.fetch_add(chunk_);
      if (begin >= n_) return;
      int64_t end = std::min(n_, begin + chunk_);
      try {
        (*body_)(begin, end);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
        next_.store(n_);
      }
    }
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        if (stopping_) return;
      }
      drain();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        active_--;
      }
      done_.notify_one();
    }
  }

  const int size_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  bool stopping_ = false;
  const std::function<void(int64_t, int64_t)>* body_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  std::atomic<int64_t> next_{0};
  int active_ = 0;
  std::exception_ptr error_;
};

int configured_threads() {
  if (const std::string env = environment("STEPVIDEO_THREADS"); !env.empty()) {
    int value = std::atoi(env.c_str());
    if (value > 0) return std::min(value, 256);
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

// Deliberately never destroyed: joining threads from a static destructor at process exit could
// hang if an op were still running; the OS reclaims the threads.
Pool& pool() {
  static Pool* instance = new Pool(configured_threads());
  return *instance;
}

}  // namespace

int thread_count() { return pool().size(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  pool().run(n, grain, body);
}

}  // namespace sv::cpu
