// Fibers: the emulated GPU threads of one block run as cooperatively scheduled contexts on one OS
// thread. The switch is a handful of instructions (callee-saved registers, stack pointer, FP control
// words) written here for x86-64 and AArch64; glibc's swapcontext makes a system call per switch
// (40x slower) and is only the fallback on other machines. Sanitizers are told about every switch
// (AddressSanitizer's fiber API, ThreadSanitizer's fibers), so neither mistakes one for a bug.
#pragma once
#include <cstddef>
#include <cstdint>

#include "device.h"

namespace sv::emu {

class Fiber {
 public:
  using Entry = void (*)(void* arg);

  Fiber() = default;
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
  ~Fiber();

  // Gives the fiber a stack (kept across resets: kFiberStackBytes, aligned to its size, its first
  // page holding `tag`, then a guard page) and an entry function; the next switch_to(*this) starts
  // entry(arg) on that stack. The entry must never return: it ends by switching away.
  void reset(Entry entry, void* arg, const FiberTag& tag);
  // Turns the calling OS thread's own context into a fiber (the scheduler's), without a stack.
  void adopt_current_thread();

  // Saves the running context into `from` and resumes `to`.
  static void switch_to(Fiber& from, Fiber& to);
  // Leaves `from` for good (its work is done or abandoned) and resumes `to`.
  static void exit_to(Fiber& from, Fiber& to);

 private:
  void* sp_ = nullptr;           // saved stack pointer (or the ucontext on the fallback path)
  unsigned char* region_ = nullptr;  // kFiberStackBytes: tag page, guard page, stack
  void* asan_fake_stack_ = nullptr;
  void* tsan_fiber_ = nullptr;
  bool owns_tsan_fiber_ = false;
  Entry entry_ = nullptr;
  void* arg_ = nullptr;

  static void start(Fiber* self);
  static void transfer(Fiber& from, Fiber& to, void** fake_stack);
  friend struct FiberAccess;
};

}  // namespace sv::emu
