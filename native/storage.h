// Reference-counted memory blocks on the host or a CUDA device. Tensors (and queued CPU jobs)
// hold shared_ptrs, so a block lives until its last user is done with it: disposing a tensor
// whose data a queued op still reads is safe. CUDA blocks are freed stream-ordered.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

namespace sv {

constexpr int kCpuDevice = -1;
constexpr int kMaxCudaDevices = 16;

class Storage {
 public:
  // Allocates `bytes` on `device` (kCpuDevice or a CUDA index). Throws ERR_OOM / ERR_CUDA_OOM.
  static std::shared_ptr<Storage> create(int device, size_t bytes);
  // Host memory that CUDA can upload from asynchronously (page-locked with cudaHostAlloc in CUDA
  // builds; plain host memory otherwise). Counted as host memory.
  static std::shared_ptr<Storage> create_pinned_host(size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  int device() const { return device_; }

 private:
  Storage(int device, void* data, size_t bytes, bool pinned = false)
      : data_(data), bytes_(bytes), device_(device), pinned_(pinned) {}
  void* data_;
  size_t bytes_;
  int device_;
  bool pinned_;
};

struct MemoryStats {
  int64_t bytes_in_use = 0;
  int64_t peak_bytes = 0;
  int64_t live_blocks = 0;
};

MemoryStats memory_stats(int device);
void reset_peak(int device);

// When set (STEPVIDEO_POISON=1 or set_poison(true)), new blocks are filled with 0xFF bytes, which
// is NaN in f32/bf16/f16, so a kernel that forgets to write part of its output fails loudly.
void set_poison(bool on);
bool poison_enabled();

}  // namespace sv
