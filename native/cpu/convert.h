// Element conversion between dtypes on plain host buffers. Single-threaded: used off the executor
// (file loads and transfers run on libuv threads, where the op thread pool must not be entered).
#pragma once
#include <cstdint>

#include "../dtype.h"

namespace sv::cpu {
void convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t count);
}
