// AddressSanitizer's manual poisoning, for the emulator's memory (shared-memory arenas, pooled
// device blocks): a no-op in builds without ASan.
#pragma once
#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
extern "C" void __asan_poison_memory_region(void const volatile* addr, size_t size);
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, size_t size);
#define SV_ASAN_POISON(p, n) __asan_poison_memory_region((p), (n))
#define SV_ASAN_UNPOISON(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define SV_ASAN_POISON(p, n) ((void)(p), (void)(n))
#define SV_ASAN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif
