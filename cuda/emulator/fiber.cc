#include "fiber.h"

#include "sanitizer.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <new>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
#endif
#if defined(SV_TSAN)
extern "C" void* __tsan_get_current_fiber();
extern "C" void* __tsan_create_fiber(unsigned flags);
extern "C" void __tsan_destroy_fiber(void* fiber);
extern "C" void __tsan_switch_to_fiber(void* fiber, unsigned flags);
#endif

#if defined(__x86_64__)
// sv_emu_context_switch(void** save_sp, void* next_sp): pushes the callee-saved registers, stores
// the stack pointer, loads the other one and pops its frame. The SSE and x87 control words are not
// switched (ldmxcsr and fldcw are slow): every fiber of an OS thread shares its floating-point
// environment, and nothing here changes it.
// sv_emu_context_start: a new fiber's first return lands here with r12 = its Fiber, r13 = Fiber::start.
asm(R"(
.text
.globl sv_emu_context_switch
.hidden sv_emu_context_switch
.type sv_emu_context_switch,@function
sv_emu_context_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size sv_emu_context_switch,.-sv_emu_context_switch

.globl sv_emu_context_start
.hidden sv_emu_context_start
.type sv_emu_context_start,@function
sv_emu_context_start:
  movq %r12, %rdi
  callq *%r13
  ud2
.size sv_emu_context_start,.-sv_emu_context_start
)");
extern "C" void sv_emu_context_switch(void** save_sp, void* next_sp);
extern "C" void sv_emu_context_start();
#endif

namespace sv::emu {

struct FiberAccess {
  static void start(Fiber* fiber) { Fiber::start(fiber); }
};

namespace {

size_t page_size() {
  static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

#if defined(__SANITIZE_ADDRESS__)
// The OS thread's own stack, for ASan's bookkeeping when a fiber switches back to the scheduler.
void thread_stack(const void** bottom, size_t* size) {
  pthread_attr_t attr;
  *bottom = nullptr;
  *size = 0;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return;
  void* address = nullptr;
  pthread_attr_getstack(&attr, &address, size);
  pthread_attr_destroy(&attr);
  *bottom = address;
}
#endif

#if !defined(__x86_64__)
void ucontext_entry(unsigned hi, unsigned lo) {
  Fiber* fiber = reinterpret_cast<Fiber*>((static_cast<uintptr_t>(hi) << 32) | lo);
  FiberAccess::start(fiber);
  std::abort();
}
#endif

}  // namespace

// The usable stack: above the tag page and the guard page.
static unsigned char* stack_bottom(unsigned char* region) { return region + 2 * page_size(); }
static size_t stack_size() { return kFiberStackBytes - 2 * page_size(); }

Fiber::~Fiber() {
  if (region_ != nullptr) munmap(region_, kFiberStackBytes);
#if defined(SV_TSAN)
  if (owns_tsan_fiber_ && tsan_fiber_ != nullptr) __tsan_destroy_fiber(tsan_fiber_);
#endif
#if !defined(__x86_64__)
  delete static_cast<ucontext_t*>(sp_);
#endif
}

void Fiber::adopt_current_thread() {
#if defined(SV_TSAN)
  tsan_fiber_ = __tsan_get_current_fiber();
#endif
#if !defined(__x86_64__)
  if (sp_ == nullptr) sp_ = new ucontext_t();
#endif
}

void Fiber::reset(Entry entry, void* arg, const FiberTag& tag) {
  entry_ = entry;
  arg_ = arg;
  const size_t page = page_size();
  if (region_ == nullptr) {
    // Twice the size, then the aligned part kept: the stack must be aligned to its own size.
    const size_t span = 2 * kFiberStackBytes;
    void* memory = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t start = reinterpret_cast<uintptr_t>(memory);
    const uintptr_t aligned = (start + kFiberStackBytes - 1) & ~static_cast<uintptr_t>(kFiberStackBytes - 1);
    if (aligned > start) munmap(memory, aligned - start);
    if (aligned + kFiberStackBytes < start + span) munmap(reinterpret_cast<void*>(aligned + kFiberStackBytes), start + span - aligned - kFiberStackBytes);
    region_ = reinterpret_cast<unsigned char*>(aligned);
    mprotect(region_ + page, page, PROT_NONE);  // guard page: a stack overflow faults instead of corrupting the tag
  }
  *reinterpret_cast<FiberTag*>(region_) = tag;
  // The frames of the stack's last use never returned (a fiber ends by switching away): their
  // redzones are still poisoned to AddressSanitizer. A new start begins with a clean stack.
  SV_ASAN_UNPOISON(stack_bottom(region_), stack_size());
#if defined(SV_TSAN)
  if (tsan_fiber_ == nullptr) {
    tsan_fiber_ = __tsan_create_fiber(0);
    owns_tsan_fiber_ = true;
  }
#endif
  unsigned char* top = region_ + kFiberStackBytes;
#if defined(__x86_64__)
  // The frame sv_emu_context_switch pops: r15, r14, r13, r12, rbx, rbp, return address; after the
  // return the stack pointer (top - 16) is 16-byte aligned, as a call expects before it pushes.
  uint64_t* frame = reinterpret_cast<uint64_t*>(top - 72);
  frame[0] = 0;                                                // r15
  frame[1] = 0;                                                // r14
  frame[2] = reinterpret_cast<uint64_t>(&FiberAccess::start);  // r13
  frame[3] = reinterpret_cast<uint64_t>(this);                 // r12
  frame[4] = 0;                                                // rbx
  frame[5] = 0;                                                // rbp
  frame[6] = reinterpret_cast<uint64_t>(&sv_emu_context_start);
  sp_ = frame;
#else
  ucontext_t* context = static_cast<ucontext_t*>(sp_);
  if (context == nullptr) sp_ = context = new ucontext_t();
  getcontext(context);
  context->uc_stack.ss_sp = stack_bottom(region_);
  context->uc_stack.ss_size = stack_size();
  context->uc_link = nullptr;
  const uintptr_t self = reinterpret_cast<uintptr_t>(this);
  makecontext(context, reinterpret_cast<void (*)()>(&ucontext_entry), 2, static_cast<unsigned>(self >> 32),
              static_cast<unsigned>(self & 0xffffffffu));
#endif
}

void Fiber::start(Fiber* self) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  self->entry_(self->arg_);
  std::fputs("stepvideo emulator: a fiber's entry returned\n", stderr);
  std::abort();
}

// Saves the running context into `from` and resumes `to`, telling the sanitizers. `fake_stack`:
// where ASan keeps `from`'s fake stack until it resumes (null: `from` is done, it may go).
void Fiber::transfer(Fiber& from, Fiber& to, void** fake_stack) {
#if defined(__SANITIZE_ADDRESS__)
  const void* bottom = to.region_ != nullptr ? stack_bottom(to.region_) : nullptr;
  size_t size = stack_size();
  if (to.region_ == nullptr) thread_stack(&bottom, &size);
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
#else
  (void)fake_stack;
#endif
#if defined(SV_TSAN)
  __tsan_switch_to_fiber(to.tsan_fiber_, 1);  // __tsan_switch_to_fiber_no_sync: switches imply no order
#endif
#if defined(__x86_64__)
  sv_emu_context_switch(&from.sp_, to.sp_);
#else
  swapcontext(static_cast<ucontext_t*>(from.sp_), static_cast<ucontext_t*>(to.sp_));
#endif
}

void Fiber::switch_to(Fiber& from, Fiber& to) {
  transfer(from, to, &from.asan_fake_stack_);
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(from.asan_fake_stack_, nullptr, nullptr);
#endif
}

void Fiber::exit_to(Fiber& from, Fiber& to) {
  transfer(from, to, nullptr);
  std::fputs("stepvideo emulator: a finished fiber was resumed\n", stderr);
  std::abort();
}

}  // namespace sv::emu
