// cuBLASLt on the emulated device: a reference implementation behind the same table gemm.cu loads
// from libcublasLt on a GPU host (cuda/cublaslt.h), covering what the project calls: column-major
// layouts with leading dimensions, transposes, strided batches, f32/f16/bf16 and e4m3 operands,
// f32 compute, the BIAS / GELU / GELU_BIAS epilogues, alpha as a device vector over D's rows, and
// per-row / per-column f32 scale vectors of FP8 operands. Products run in stream order; they sum in
// f64 (a GPU sums in f32 in its own order: the last bits differ, within the tests' tolerances).
//
// Like the library, a product reads the bias, alpha and scale vectors 16 bytes at a time: a vector
// that is not 16-byte aligned faults the device (cudaErrorMisalignedAddress), as on a GPU.
#include "../cublaslt.h"

#include <cmath>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../../native/dtype.h"
#include "../../native/fp8.h"
#include "runtime.h"
#include "simt.h"

namespace sv::cuda::lt {
namespace {

constexpr Status kNotInitialized = 1, kInvalidValue = 7, kNotSupported = 15;
constexpr uint64_t kHandleMagic = 0x5356454d554c5448ull;

struct Context {
  uint64_t magic = kHandleMagic;
};

struct Desc {
  int compute, scale_type;
  int32_t trans_a = kOpN, trans_b = kOpN;
  uint32_t epilogue = kEpilogueDefault;
  const void* bias = nullptr;
  int32_t bias_type = -1;
  int32_t pointer_mode = kPointerModeHost;
  const void* a_scale = nullptr;
  const void* b_scale = nullptr;
  int8_t fast_accum = 0;
  int32_t a_scale_mode = 0, b_scale_mode = 0;
};

struct Layout {
  int type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
  int64_t stride = 0;
};

template <typename T>
Status set_value(T* target, const void* buffer, size_t size) {
  if (size != sizeof(T)) return kInvalidValue;
  std::memcpy(target, buffer, sizeof(T));
  return kSuccess;
}

Status create(Handle* handle) {
  if (emu::injected("cublasLtCreate")) {
    *handle = reinterpret_cast<Handle>(uintptr_t{0xdead});  // a failed create may leave garbage behind
    return kNotInitialized;
  }
  *handle = reinterpret_cast<Handle>(new Context());
  return kSuccess;
}

bool valid(Handle handle) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(handle);
  return address > 0x10000 && reinterpret_cast<const Context*>(handle)->magic == kHandleMagic;
}

Status desc_create(MatmulDesc* desc, int compute, int scale_type) {
  if (compute != kCompute32F || scale_type != kR32F) return kNotSupported;
  *desc = new Desc{compute, scale_type};
  return kSuccess;
}

Status desc_destroy(MatmulDesc desc) {
  delete static_cast<Desc*>(desc);
  return kSuccess;
}

Status desc_set(MatmulDesc handle, int attribute, const void* buffer, size_t size) {
  Desc& d = *static_cast<Desc*>(handle);
  switch (attribute) {
    case kDescTransA: return set_value(&d.trans_a, buffer, size);
    case kDescTransB: return set_value(&d.trans_b, buffer, size);
    case kDescEpilogue: return set_value(&d.epilogue, buffer, size);
    case kDescBiasPointer: return set_value(&d.bias, buffer, size);
    case kDescBiasDataType: return set_value(&d.bias_type, buffer, size);
    case kDescPointerMode: return set_value(&d.pointer_mode, buffer, size);
    case kDescAScalePointer: return set_value(&d.a_scale, buffer, size);
    case kDescBScalePointer: return set_value(&d.b_scale, buffer, size);
    case kDescFastAccum: return set_value(&d.fast_accum, buffer, size);
    case kDescAScaleMode: return set_value(&d.a_scale_mode, buffer, size);
    case kDescBScaleMode: return set_value(&d.b_scale_mode, buffer, size);
  }
  return kInvalidValue;
}

Status layout_create(MatrixLayout* layout, int type, uint64_t rows, uint64_t cols, int64_t ld) {
  if (ld < static_cast<int64_t>(rows)) return kInvalidValue;
  *layout = new Layout{type, rows, cols, ld};
  return kSuccess;
}

Status layout_destroy(MatrixLayout layout) {
  delete static_cast<Layout*>(layout);
  return kSuccess;
}

Status layout_set(MatrixLayout handle, int attribute, const void* buffer, size_t size) {
  Layout& l = *static_cast<Layout*>(handle);
  switch (attribute) {
    case kLayoutBatchCount: return set_value(&l.batch, buffer, size);
    case kLayoutStridedBatchOffset: return set_value(&l.stride, buffer, size);
  }
  return kInvalidValue;
}

Status pref_create(Preference* pref) {
  *pref = new int(0);
  return kSuccess;
}
Status pref_destroy(Preference pref) {
  delete static_cast<int*>(pref);
  return kSuccess;
}
Status pref_set(Preference, int, const void*, size_t) { return kSuccess; }

size_t type_size(int type) {
  switch (type) {
    case kR32F: return 4;
    case kR16F:
    case kR16BF: return 2;
    case kR8FE4M3: return 1;
  }
  return 0;
}

float load(const void* base, int type, int64_t index) {
  switch (type) {
    case kR32F: return static_cast<const float*>(base)[index];
    case kR16F: return f16_to_f32(static_cast<const uint16_t*>(base)[index]);
    case kR16BF: return bf16_to_f32(static_cast<const uint16_t*>(base)[index]);
    case kR8FE4M3: return fp8_e4m3_decode(static_cast<const uint8_t*>(base)[index]);
  }
  return NAN;
}

void store(void* base, int type, int64_t index, float value) {
  switch (type) {
    case kR32F: static_cast<float*>(base)[index] = value; break;
    case kR16F: static_cast<uint16_t*>(base)[index] = f32_to_f16(value); break;
    case kR16BF: static_cast<uint16_t*>(base)[index] = f32_to_bf16(value); break;
  }
}

// Why the library would refuse this combination ("" when it takes it).
std::string unsupported(const Desc& d, const Layout& a, const Layout& b, const Layout& c, const Layout& out) {
  const bool fp8 = a.type == kR8FE4M3 || b.type == kR8FE4M3;
  if (fp8) {
    if (a.type != kR8FE4M3 || b.type != kR8FE4M3) return "FP8 needs both operands in e4m3";
    if (d.trans_a != kOpT || d.trans_b != kOpN) return "FP8 products take the TN layout only";
    if (d.epilogue == kEpilogueBias || d.epilogue == kEpilogueGeluBias) return "no bias epilogue with outer-vector scales";
  } else if (a.type != b.type || type_size(a.type) == 0) {
    return "operand types";
  }
  if (c.type != out.type || type_size(out.type) == 0 || out.type == kR8FE4M3) return "output type";
  const uint64_t m = d.trans_a == kOpN ? a.rows : a.cols, k = d.trans_a == kOpN ? a.cols : a.rows;
  const uint64_t kb = d.trans_b == kOpN ? b.rows : b.cols, n = d.trans_b == kOpN ? b.cols : b.rows;
  if (k != kb || out.rows != m || out.cols != n || c.rows != m || c.cols != n) return "shapes";
  if (a.batch != out.batch || b.batch != out.batch || c.batch != out.batch) return "batch counts";
  if (d.epilogue != kEpilogueDefault && d.epilogue != kEpilogueBias && d.epilogue != kEpilogueGelu &&
      d.epilogue != kEpilogueGeluBias) {
    return "epilogue";
  }
  return "";
}

Status heuristic(Handle handle, MatmulDesc desc, MatrixLayout la, MatrixLayout lb, MatrixLayout lc, MatrixLayout ld,
                 Preference, int requested, HeuristicResult* results, int* returned) {
  if (!valid(handle)) return kNotInitialized;
  *returned = 0;
  const Desc& d = *static_cast<const Desc*>(desc);
  if (!unsupported(d, *static_cast<Layout*>(la), *static_cast<Layout*>(lb), *static_cast<Layout*>(lc),
                   *static_cast<Layout*>(ld))
           .empty()) {
    return kNotSupported;
  }
  // Three "algorithms" (the same arithmetic), so autotuning has candidates to time.
  const int count = requested < 3 ? requested : 3;
  for (int i = 0; i < count; i++) {
    results[i] = HeuristicResult{};
    results[i].algo.data[0] = static_cast<uint64_t>(i);
    results[i].workspace_size = 0;
    results[i].state = kSuccess;
  }
  *returned = count;
  return kSuccess;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

float gelu_tanh(float y) { return 0.5f * y * (1.0f + std::tanh(0.7978845608028654f * (y + 0.044715f * y * y * y))); }

Status matmul(Handle handle, MatmulDesc desc, const void* alpha, const void* A, MatrixLayout la, const void* B, MatrixLayout lb,
              const void* beta, const void* C, MatrixLayout lc, void* D, MatrixLayout ld, const Algo* algo, void*, size_t,
              void* stream) {
  if (!valid(handle)) return kNotInitialized;
  if (algo == nullptr || algo->data[0] > 2) return kInvalidValue;
  const Desc d = *static_cast<const Desc*>(desc);  // copied: the product runs later, in stream order
  const Layout a = *static_cast<Layout*>(la), b = *static_cast<Layout*>(lb), c = *static_cast<Layout*>(lc),
               out = *static_cast<Layout*>(ld);
  if (!unsupported(d, a, b, c, out).empty()) return kNotSupported;
  const bool alpha_vector = d.pointer_mode == kPointerModeAlphaDeviceVectorBetaHost;
  const float alpha_host = alpha_vector ? 0.0f : *static_cast<const float*>(alpha);
  const float beta_host = *static_cast<const float*>(beta);
  const float* alpha_device = alpha_vector ? static_cast<const float*>(alpha) : nullptr;
  const cudaError_t queued = emu::enqueue_host_work(
      static_cast<cudaStream_t>(stream), "cublasLtMatmul",
      [=](std::string* report) -> cudaError_t {
        const bool bias = d.epilogue == kEpilogueBias || d.epilogue == kEpilogueGeluBias;
        const bool gelu = d.epilogue == kEpilogueGelu || d.epilogue == kEpilogueGeluBias;
        const bool scaled = d.a_scale_mode == kMatrixScaleOuterVec32F;
        for (const auto& [pointer, what] : {std::pair<const void*, const char*>{bias ? d.bias : nullptr, "bias"},
                                            {alpha_device, "alpha vector"},
                                            {scaled ? d.a_scale : nullptr, "A scale vector"},
                                            {scaled ? d.b_scale : nullptr, "B scale vector"}}) {
          if (pointer != nullptr && !aligned16(pointer)) {
            *report = std::string("cublasLtMatmul read its ") + what + " 16 bytes at a time from an address that is not 16-byte aligned";
            return cudaErrorMisalignedAddress;
          }
        }
        const int64_t m = d.trans_a == kOpN ? a.rows : a.cols, k = d.trans_a == kOpN ? a.cols : a.rows;
        const int64_t n = out.cols;
        std::vector<float> opa(static_cast<size_t>(m * k)), opb(static_cast<size_t>(n * k));
        for (int32_t batch = 0; batch < out.batch; batch++) {
          // op(A) as m rows of k, op(B) as n rows of k: both contiguous along k.
          for (int64_t i = 0; i < m; i++)
            for (int64_t p = 0; p < k; p++)
              opa[i * k + p] = load(A, a.type, batch * a.stride + (d.trans_a == kOpN ? i + p * a.ld : p + i * a.ld));
          for (int64_t j = 0; j < n; j++)
            for (int64_t p = 0; p < k; p++)
              opb[j * k + p] = load(B, b.type, batch * b.stride + (d.trans_b == kOpN ? p + j * b.ld : j + p * b.ld));
          auto columns = [&](int64_t first, int64_t last) {
            for (int64_t j = first; j < last; j++) {
              for (int64_t i = 0; i < m; i++) {
                const float* x = &opa[i * k];
                const float* y = &opb[j * k];
                double sum = 0.0;
                for (int64_t p = 0; p < k; p++) sum += static_cast<double>(x[p]) * y[p];
                if (scaled) sum *= static_cast<double>(static_cast<const float*>(d.a_scale)[i]) * static_cast<const float*>(d.b_scale)[j];
                double value = (alpha_device ? alpha_device[i] : alpha_host) * sum;
                if (beta_host != 0.0f) value += static_cast<double>(beta_host) * load(C, c.type, batch * c.stride + i + j * c.ld);
                if (bias) value += load(d.bias, d.bias_type, i);
                float result = static_cast<float>(value);
                if (gelu) result = gelu_tanh(result);
                store(D, out.type, batch * out.stride + i + j * out.ld, result);
              }
            }
          };
          const unsigned workers = m * n * k > (int64_t{1} << 22) ? emu::settings().workers : 1;
          std::vector<std::thread> threads;
          const int64_t per = (n + workers - 1) / workers;
          for (unsigned w = 1; w < workers; w++) {
            const int64_t first = w * per, last = std::min<int64_t>(n, first + per);
            if (first < last) threads.emplace_back(columns, first, last);
          }
          columns(0, std::min<int64_t>(n, per));
          for (std::thread& t : threads) t.join();
        }
        return cudaSuccess;
      });
  return queued == cudaSuccess ? kSuccess : 13;  // CUBLAS_STATUS_EXECUTION_FAILED
}

const char* status_name(Status status) {
  switch (status) {
    case kSuccess: return "CUBLAS_STATUS_SUCCESS";
    case kNotInitialized: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case kInvalidValue: return "CUBLAS_STATUS_INVALID_VALUE";
    case kNotSupported: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case 13: return "CUBLAS_STATUS_EXECUTION_FAILED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

}  // namespace

const Api* emulated_api() {
  static const Api table{&create,        &desc_create, &desc_destroy, &desc_set,  &layout_create, &layout_destroy,
                         &layout_set,    &pref_create, &pref_destroy, &pref_set,  &heuristic,     &matmul,
                         &status_name};
  return &table;
}

}  // namespace sv::cuda::lt
