// cuBLASLt, loaded at run time with dlopen so the addon has no link-time dependency on it (CI and
// CPU-only hosts have no cuBLAS). Only the types, enum values and entry points this project uses
// are declared here, with the values of NVIDIA's cublasLt.h / cublas_api.h / library_types.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "library_search.h"

namespace sv::cuda::lt {

using Status = int;  // cublasStatus_t; 0 = success
constexpr Status kSuccess = 0;

using Handle = struct cublasLtContext*;
using MatmulDesc = void*;    // cublasLtMatmulDesc_t
using MatrixLayout = void*;  // cublasLtMatrixLayout_t
using Preference = void*;    // cublasLtMatmulPreference_t

struct Algo {
  uint64_t data[8];
};
struct HeuristicResult {
  Algo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};

// cudaDataType_t
constexpr int kR32F = 0, kR16F = 2, kR16BF = 14, kR8FE4M3 = 28;
// cublasComputeType_t
constexpr int kCompute32F = 68;
// cublasOperation_t
constexpr int32_t kOpN = 0, kOpT = 1;
// cublasLtMatmulDescAttributes_t
constexpr int kDescTransA = 3, kDescTransB = 4, kDescEpilogue = 7, kDescBiasPointer = 8, kDescBiasDataType = 26;
constexpr int kDescPointerMode = 2, kDescAScalePointer = 17, kDescBScalePointer = 18, kDescFastAccum = 25,
              kDescAScaleMode = 31, kDescBScaleMode = 32;
// cublasLtPointerMode_t: alpha a device vector over D's rows (f32), beta a host scalar
constexpr int32_t kPointerModeHost = 0, kPointerModeAlphaDeviceVectorBetaHost = 4;
// cublasLtMatmulMatrixScale_t (cuBLAS 12.9+): one f32 scale per row of op(A) / per column of op(B)
constexpr int32_t kMatrixScaleOuterVec32F = 3;
// cublasLtEpilogue_t
constexpr uint32_t kEpilogueDefault = 1, kEpilogueBias = 4, kEpilogueGelu = 32, kEpilogueGeluBias = 36;
// cublasLtMatrixLayoutAttribute_t
constexpr int kLayoutBatchCount = 5, kLayoutStridedBatchOffset = 6;
// cublasLtMatmulPreferenceAttributes_t
constexpr int kPrefMaxWorkspaceBytes = 1, kPrefMinAlignA = 5, kPrefMinAlignB = 6, kPrefMinAlignC = 7,
              kPrefMinAlignD = 8;

struct Api {
  Status (*create)(Handle*);
  Status (*matmul_desc_create)(MatmulDesc*, int compute, int scale_type);
  Status (*matmul_desc_destroy)(MatmulDesc);
  Status (*matmul_desc_set)(MatmulDesc, int attr, const void* buf, size_t size);
  Status (*layout_create)(MatrixLayout*, int type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*layout_destroy)(MatrixLayout);
  Status (*layout_set)(MatrixLayout, int attr, const void* buf, size_t size);
  Status (*pref_create)(Preference*);
  Status (*pref_destroy)(Preference);
  Status (*pref_set)(Preference, int attr, const void* buf, size_t size);
  Status (*heuristic)(Handle, MatmulDesc, MatrixLayout, MatrixLayout, MatrixLayout, MatrixLayout, Preference, int,
                      HeuristicResult*, int*);
  Status (*matmul)(Handle, MatmulDesc, const void* alpha, const void* a, MatrixLayout, const void* b, MatrixLayout,
                   const void* beta, const void* c, MatrixLayout, void* d, MatrixLayout, const Algo*, void* workspace,
                   size_t workspace_size, void* stream);
  const char* (*status_name)(Status);
};

// The loaded API, or nullptr when libcublasLt could not be found (then `why` says what was tried).
const Api* api(const char** why = nullptr);
// The file the API was loaded from ("" when it was not).
std::string library_path();

// Where libcublasLt is looked for, in order (cuda/library_search.h): STEPVIDEO_CUBLASLT alone when
// set; otherwise the sonames through the dynamic loader, the CUDA toolkit folders, the pip wheels
// nvidia-cublas (CUDA 13) and nvidia-cublas-cu12, $CONDA_PREFIX/lib.
std::vector<std::string> library_candidates(const Lookup& lookup);

// The emulated device's reference implementation (cuda/emulator/cublaslt.cc).
const Api* emulated_api();

}  // namespace sv::cuda::lt

namespace sv::cuda {

// For the N-API glue (native/device_glue.cc): the file cuBLASLt was loaded from, loading it on the
// first call ("" when none could be loaded: `why` then says what was tried, and the own GEMM
// kernel runs), and the places it is looked for with the process's environment.
struct CublasLtInfo {
  std::string path, why;
};
CublasLtInfo cublaslt_info();
std::vector<std::string> cublaslt_candidates();

}  // namespace sv::cuda
