// Sanitizer hooks of the emulator: AddressSanitizer's manual poisoning (shared-memory arenas, pooled
// device blocks), and ThreadSanitizer's happens-before annotations, which make the emulator's
// synchronisation (barriers, collectives, mbarriers, block boundaries) visible to it: GPU threads
// switch without implying any order (SV_TSAN builds compile the emulator itself uninstrumented, the
// kernels instrumented), so a shared-memory access that no barrier orders is a reported race.
// No-ops in builds without the sanitizer.
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

#if defined(SV_TSAN)
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#define SV_TSAN_ACQUIRE(p) __tsan_acquire(static_cast<void*>(p))
#define SV_TSAN_RELEASE(p) __tsan_release(static_cast<void*>(p))
#else
#define SV_TSAN_ACQUIRE(p) ((void)(p))
#define SV_TSAN_RELEASE(p) ((void)(p))
#endif
