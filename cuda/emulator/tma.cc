// TMA on the emulated device: cuTensorMapEncodeTiled (checked as the driver checks it) writes the
// map into the opaque CUtensorMap, and cp.async.bulk.tensor copies a box out of it into shared
// memory: rows of the box's inner extent, out-of-bounds elements as zeros, and the swizzle applied
// to the shared-memory address bits as the hardware applies it (so a destination that is not
// aligned to the swizzle pattern gives the pattern the GPU would give).
#include <cuda.h>

#include <cstring>
#include <functional>
#include <string>

#include "ptx.h"
#include "simt.h"

namespace sv::emu {

namespace {

constexpr unsigned long long kMagic = 0x53564d4150544d41ull;

// The fields of an encoded map, as this file lays them out in CUtensorMap::opaque.
struct TensorMap {
  const unsigned char* address;
  uint8_t rank, element_bytes, swizzle_bytes;  // swizzle_bytes: 0 = none
  bool oob_nan;
  uint64_t dims[5];
  uint64_t strides[4];  // bytes, of dimensions 1..4 (dimension 0 is the element size)
  uint16_t box[5];
};

unsigned element_bytes(CUtensorMapDataType type) {
  switch (type) {
    case CU_TENSOR_MAP_DATA_TYPE_UINT8: return 1;
    case CU_TENSOR_MAP_DATA_TYPE_UINT16:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16: return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT32:
    case CU_TENSOR_MAP_DATA_TYPE_INT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32: return 4;
    case CU_TENSOR_MAP_DATA_TYPE_UINT64:
    case CU_TENSOR_MAP_DATA_TYPE_INT64:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT64: return 8;
  }
  return 0;
}

void store(CUtensorMap* map, const TensorMap& m) {
  static_assert(sizeof(TensorMap) + 8 <= sizeof(CUtensorMap), "the map fits the opaque bytes");
  std::memset(map, 0, sizeof(*map));
  map->opaque[0] = kMagic;
  std::memcpy(&map->opaque[1], &m, sizeof(m));
}

bool load(const CUtensorMap* map, TensorMap* m) {
  if (map->opaque[0] != kMagic) return false;
  std::memcpy(m, &map->opaque[1], sizeof(*m));
  return true;
}

CUresult encode_tiled(CUtensorMap* map, CUtensorMapDataType type, cuuint32_t rank, void* address, const cuuint64_t* dims,
                      const cuuint64_t* strides, const cuuint32_t* box, const cuuint32_t* element_strides,
                      CUtensorMapInterleave interleave, CUtensorMapSwizzle swizzle, CUtensorMapL2promotion,
                      CUtensorMapFloatOOBfill oob) {
  TensorMap m{};
  m.element_bytes = element_bytes(type);
  if (m.element_bytes == 0 || rank < 1 || rank > 5 || interleave != CU_TENSOR_MAP_INTERLEAVE_NONE) return CUDA_ERROR_INVALID_VALUE;
  if (reinterpret_cast<uintptr_t>(address) % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
  m.address = static_cast<const unsigned char*>(address);
  m.rank = static_cast<uint8_t>(rank);
  m.swizzle_bytes = swizzle == CU_TENSOR_MAP_SWIZZLE_128B ? 128 : swizzle == CU_TENSOR_MAP_SWIZZLE_64B ? 64
                    : swizzle == CU_TENSOR_MAP_SWIZZLE_32B ? 32 : 0;
  m.oob_nan = oob == CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA;
  for (unsigned i = 0; i < rank; i++) {
    if (dims[i] == 0 || dims[i] > (uint64_t{1} << 32)) return CUDA_ERROR_INVALID_VALUE;
    if (box[i] == 0 || box[i] > 256 || element_strides[i] == 0 || element_strides[i] > 8) return CUDA_ERROR_INVALID_VALUE;
    if (element_strides[i] != 1) return CUDA_ERROR_INVALID_VALUE;  // strided boxes: not emulated
    m.dims[i] = dims[i];
    m.box[i] = static_cast<uint16_t>(box[i]);
    if (i > 0) {
      if (strides[i - 1] % 16 != 0 || strides[i - 1] >= (uint64_t{1} << 40)) return CUDA_ERROR_INVALID_VALUE;
      m.strides[i - 1] = strides[i - 1];
    }
  }
  const uint64_t inner = uint64_t{box[0]} * m.element_bytes;
  if (inner % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
  if (m.swizzle_bytes != 0 && inner > m.swizzle_bytes) return CUDA_ERROR_INVALID_VALUE;
  store(map, m);
  return CUDA_SUCCESS;
}

std::string site_text(const char* file, int line) {
  const char* base = std::strrchr(file, '/');
  return std::string(base ? base + 1 : file) + ":" + std::to_string(line);
}

}  // namespace

void* tensor_map_encoder() { return reinterpret_cast<void*>(&encode_tiled); }

namespace ptx {

void tma_load(uint32_t dst, const CUtensorMap_st* map_pointer, uint32_t bar, int c0, int c1, int c2, const char* file, int line) {
  maybe_yield();
  TensorMap m;
  if (!load(map_pointer, &m)) {
    fail_launch("cp.async.bulk.tensor (" + site_text(file, line) + ") by " + describe_thread(this_thread()) +
                    ": the tensor map was not made by cuTensorMapEncodeTiled",
                cudaErrorIllegalAddress);
  }
  if (m.rank != 3) fail_launch("cp.async.bulk.tensor.3d (" + site_text(file, line) + ") with a tensor map of rank " + std::to_string(m.rank));
  const uint32_t inner = m.box[0] * m.element_bytes;
  if (m.swizzle_bytes != 0 && inner != m.swizzle_bytes) {
    fail_launch("cp.async.bulk.tensor (" + site_text(file, line) + "): a box narrower than its swizzle span is not emulated");
  }
  const uint32_t size = m.box[0] * m.box[1] * m.box[2] * m.element_bytes;
  unsigned char* box = static_cast<unsigned char*>(shared_pointer(dst, size, 128, "cp.async.bulk.tensor destination", file, line));
  poison_shared(box, size);  // reads before the barrier completes see NaN
  unsigned char* base = shared_base();
  const int coordinates[3] = {c0, c1, c2};
  TmaCopy copy;
  copy.size = size;
  copy.land = [m, dst, base, coordinates]() {
    const uint32_t inner_bytes = m.box[0] * m.element_bytes;
    for (uint32_t i2 = 0; i2 < m.box[2]; i2++) {
      for (uint32_t i1 = 0; i1 < m.box[1]; i1++) {
        for (uint32_t i0 = 0; i0 < m.box[0]; i0++) {
          const int64_t g0 = int64_t{coordinates[0]} + i0, g1 = int64_t{coordinates[1]} + i1, g2 = int64_t{coordinates[2]} + i2;
          uint32_t address = dst + (i2 * m.box[1] + i1) * inner_bytes + i0 * m.element_bytes;
          if (m.swizzle_bytes != 0) address ^= ((address >> 7) & (m.swizzle_bytes / 16 - 1)) << 4;
          unsigned char* to = base + address;
          const bool inside = g0 >= 0 && g1 >= 0 && g2 >= 0 && static_cast<uint64_t>(g0) < m.dims[0] &&
                              static_cast<uint64_t>(g1) < m.dims[1] && static_cast<uint64_t>(g2) < m.dims[2];
          if (inside) {
            std::memcpy(to, m.address + g0 * m.element_bytes + g1 * m.strides[0] + g2 * m.strides[1], m.element_bytes);
          } else if (m.oob_nan) {
            std::memset(to, 0xff, m.element_bytes);
          } else {
            std::memset(to, 0, m.element_bytes);
          }
        }
      }
    }
  };
  add_tma_copy(bar, std::move(copy), file, line);
}

}  // namespace ptx
}  // namespace sv::emu
