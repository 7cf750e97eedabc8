// Loading tensor bytes from files straight into tensors (host or GPU), off the JS thread and never
// through the JS heap. TypeScript parses the file formats (safetensors, torch zip) and passes
// absolute offsets; this file only reads, converts dtypes and copies. GPU loads go through two
// pinned staging buffers so reading chunk i+1 overlaps the upload of chunk i.
#include <fcntl.h>
#include <napi.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "cpu/convert.h"
#include "dispatch.h"
#include "napi_util.h"

namespace sv {
namespace {

struct LoadEntry {
  std::shared_ptr<Storage> keep;
  TensorRef dst;
  std::string path;
  int64_t offset = 0;
  int64_t bytes = 0;  // bytes in the file
  DType src_dtype = DType::f32;
};

class FileCache {
 public:
  ~FileCache() {
    for (auto& [path, fd] : fds_) ::close(fd);
  }
  int open(const std::string& path, int64_t* size) {
    auto it = fds_.find(path);
    if (it == fds_.end()) {
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail("ERR_IO", "cannot open '" + path + "': " + std::strerror(errno));
      struct stat st;
      if (::fstat(fd, &st) != 0) {
        ::close(fd);
        fail("ERR_IO", "cannot stat '" + path + "': " + std::strerror(errno));
      }
      sizes_[path] = st.st_size;
      it = fds_.emplace(path, fd).first;
    }
    *size = sizes_[path];
    return it->second;
  }

 private:
  std::map<std::string, int> fds_;
  std::map<std::string, int64_t> sizes_;
};

void read_fully(int fd, void* target, int64_t bytes, int64_t offset, const std::string& path) {
  char* out = static_cast<char*>(target);
  while (bytes > 0) {
    ssize_t got = ::pread(fd, out, static_cast<size_t>(std::min<int64_t>(bytes, int64_t{1} << 30)), offset);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail("ERR_IO", "read failed in '" + path + "': " + std::strerror(errno));
    if (got == 0) fail("ERR_WEIGHTS_FORMAT", "file '" + path + "' ends before the tensor data it declares");
    out += got;
    bytes -= got;
    offset += got;
  }
}

constexpr int64_t kChunkBytes = int64_t{64} << 20;

class LoadWorker : public napi::PromiseWorker {
 public:
  LoadWorker(Napi::Env env, std::vector<LoadEntry> entries) : PromiseWorker(env), entries_(std::move(entries)) {}

 protected:
  void run() override {
    FileCache files;
    for (const LoadEntry& entry : entries_) {
      int64_t file_size = 0;
      int fd = files.open(entry.path, &file_size);
      SV_CHECK(entry.offset >= 0 && entry.offset + entry.bytes <= file_size, "ERR_WEIGHTS_FORMAT",
               "tensor data [" + std::to_string(entry.offset) + ", " + std::to_string(entry.offset + entry.bytes) +
                   ") lies outside file '" + entry.path + "' of " + std::to_string(file_size) + " bytes");
      if (entry.dst.device == kCpuDevice) {
        load_to_host(fd, entry);
      } else {
        load_to_device(fd, entry);
      }
    }
  }

 private:
  void load_to_host(int fd, const LoadEntry& entry) {
    if (entry.src_dtype == entry.dst.dtype) {
      read_fully(fd, entry.dst.data, entry.bytes, entry.offset, entry.path);
      return;
    }
    const size_t src_size = dtype_size(entry.src_dtype), dst_size = dtype_size(entry.dst.dtype);
    const int64_t per_chunk = kChunkBytes / static_cast<int64_t>(src_size);
    std::vector<char> buffer(static_cast<size_t>(std::min<int64_t>(entry.bytes, kChunkBytes)));
    const int64_t count = entry.dst.numel();
    for (int64_t first = 0; first < count; first += per_chunk) {
      int64_t n = std::min(per_chunk, count - first);
      read_fully(fd, buffer.data(), n * static_cast<int64_t>(src_size), entry.offset + first * static_cast<int64_t>(src_size),
                 entry.path);
      cpu::convert(static_cast<char*>(entry.dst.data) + first * static_cast<int64_t>(dst_size), entry.dst.dtype,
                   buffer.data(), entry.src_dtype, n);
    }
  }

  void load_to_device(int fd, const LoadEntry& entry) {
#ifdef SV_WITH_CUDA
    const int64_t src_size = static_cast<int64_t>(dtype_size(entry.src_dtype));
    const int64_t dst_size = static_cast<int64_t>(dtype_size(entry.dst.dtype));
    const int64_t per_chunk = kChunkBytes / std::max(src_size, dst_size);
    const bool convert = entry.src_dtype != entry.dst.dtype;
    std::vector<char> raw(convert ? static_cast<size_t>(per_chunk * src_size) : 0);
    void* staging[2] = {nullptr, nullptr};
    void* done[2] = {nullptr, nullptr};
    const int64_t count = entry.dst.numel();
    int slot = 0;
    try {
      for (int64_t first = 0; first < count; first += per_chunk, slot ^= 1) {
        int64_t n = std::min(per_chunk, count - first);
        if (done[slot]) {  // the upload that used this buffer must have finished
          cuda::event_wait(done[slot]);
          cuda::event_destroy(done[slot]);
          done[slot] = nullptr;
        }
        if (!staging[slot]) staging[slot] = cuda::staging_acquire(static_cast<size_t>(per_chunk * dst_size));
        int64_t file_offset = entry.offset + first * src_size;
        if (convert) {
          read_fully(fd, raw.data(), n * src_size, file_offset, entry.path);
          cpu::convert(staging[slot], entry.dst.dtype, raw.data(), entry.src_dtype, n);
        } else {
          read_fully(fd, staging[slot], n * src_size, file_offset, entry.path);
        }
        cuda::copy_async(entry.dst.device, static_cast<char*>(entry.dst.data) + first * dst_size, staging[slot],
                         static_cast<size_t>(n * dst_size), cuda::CopyKind::host_to_device);
        done[slot] = cuda::event_record(entry.dst.device);
      }
      // Resolve once the data is on the device (loads are timed and awaited as complete).
      for (void* event : done)
        if (event) cuda::event_wait(event);
    } catch (...) {
      release(staging, done, entry.dst.device);
      throw;
    }
    release(staging, done, entry.dst.device);
#else
    (void)fd;
    (void)entry;
    fail("ERR_DEVICE", "this build of the addon has no CUDA backend");
#endif
  }

#ifdef SV_WITH_CUDA
  // Returns both buffers to the staging cache, each reusable once its last upload has finished
  // (never throws: this also runs while an error propagates).
  static void release(void* staging[2], void* done[2], int device) noexcept {
    for (int i = 0; i < 2; i++) {
      if (staging[i] && done[i]) {
        cuda::staging_release_after(staging[i], done[i]);
      } else if (staging[i]) {
        cuda::staging_release(staging[i], device);  // an upload may be queued without its event
      } else {
        cuda::event_destroy(done[i]);
      }
      staging[i] = done[i] = nullptr;
    }
  }
#endif

  std::vector<LoadEntry> entries_;
};

}  // namespace

// loadTensors([{ tensor, path, offset, byteLength, srcDtype }, ...]) -> Promise<void>
// Each tensor receives byteLength bytes of srcDtype elements read at `offset` of `path`, converted
// to the tensor's dtype. The tensors must not be in use by queued ops (fresh allocations).
SV_EXPORT(load_tensors) {
  SV_CHECK(info.Length() >= 1 && info[0].IsArray(), "ERR_ARGUMENT", "loadTensors expects an array of entries");
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<LoadEntry> entries;
  entries.reserve(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value item = list.Get(i);
    SV_CHECK(item.IsObject(), "ERR_ARGUMENT", "loadTensors: entry " + std::to_string(i) + " is not an object");
    Napi::Object object = item.As<Napi::Object>();
    NativeTensor* tensor = NativeTensor::unwrap(object.Get("tensor"), "tensor");
    LoadEntry entry;
    entry.keep = tensor->storage();
    entry.dst = tensor->ref();
    Napi::Value path = object.Get("path");
    SV_CHECK(path.IsString(), "ERR_ARGUMENT", "loadTensors: entry " + std::to_string(i) + " has no path");
    entry.path = path.As<Napi::String>().Utf8Value();
    Napi::Value offset = object.Get("offset"), bytes = object.Get("byteLength"), dtype = object.Get("srcDtype");
    SV_CHECK(offset.IsNumber() && bytes.IsNumber() && dtype.IsNumber(), "ERR_ARGUMENT",
             "loadTensors: entry " + std::to_string(i) + " needs numeric offset, byteLength and srcDtype");
    entry.offset = static_cast<int64_t>(offset.As<Napi::Number>().DoubleValue());
    entry.bytes = static_cast<int64_t>(bytes.As<Napi::Number>().DoubleValue());
    int32_t code = dtype.As<Napi::Number>().Int32Value();
    SV_CHECK(dtype_valid(code), "ERR_DTYPE", "loadTensors: unknown source dtype code");
    entry.src_dtype = static_cast<DType>(code);
    SV_CHECK(entry.bytes == entry.dst.numel() * static_cast<int64_t>(dtype_size(entry.src_dtype)), "ERR_SHAPE",
             "loadTensors: " + std::to_string(entry.bytes) + " bytes of " + dtype_name(entry.src_dtype) +
                 " do not fill a tensor " + entry.dst.shape_string() + " (file '" + entry.path + "')");
    entries.push_back(std::move(entry));
  }
  return napi::start(new LoadWorker(info.Env(), std::move(entries)));
}

void register_io_functions(Napi::Env env, Napi::Object exports) {
  exports.Set("loadTensors", Napi::Function::New(env, load_tensors));
}

}  // namespace sv
