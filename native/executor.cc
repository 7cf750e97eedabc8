#include "executor.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

namespace sv::executor {
namespace {

class Executor {
 public:
  Executor() : thread_([this] { loop(); }) { thread_.detach(); }

  void enqueue(std::function<void()> job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(job));
      pending_++;
    }
    ready_.notify_one();
  }

  std::future<void> fence() {
    auto promise = std::make_shared<std::promise<void>>();
    std::future<void> future = promise->get_future();
    enqueue([this, promise] {
      std::exception_ptr error;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        std::swap(error, error_);
      }
      if (error) {
        promise->set_exception(error);
      } else {
        promise->set_value();
      }
    });
    return future;
  }

  size_t pending() {
    std::lock_guard<std::mutex> lock(mutex_);
    return pending_;
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return !jobs_.empty(); });
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      try {
        job();
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      // Destroy the job (and the storage references it holds) before counting it done.
      job = nullptr;
      std::lock_guard<std::mutex> lock(mutex_);
      pending_--;
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  size_t pending_ = 0;
  std::exception_ptr error_;
  std::thread thread_;
};

// Never destroyed, for the same reason as the thread pool: no joins at process exit.
Executor& instance() {
  static Executor* executor = new Executor();
  return *executor;
}

}  // namespace

void enqueue(std::function<void()> job) { instance().enqueue(std::move(job)); }
std::future<void> fence() { return instance().fence(); }
size_t pending() { return instance().pending(); }

}  // namespace sv::executor
