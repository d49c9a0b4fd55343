// fiber.h — execution contexts for simulated GPU threads: a minimal cooperative context switch
// and a pool of guarded stacks (internal to the harness runtime).
//
// Why our own switch: the scheduler switches once per thread per barrier / warp collective,
// millions of times per test run, and ucontext's swapcontext makes a sigprocmask syscall each
// time. On x86-64 the switch is a few instructions of assembly (callee-saved registers, stack
// pointer, MXCSR and the x87 control word); other architectures fall back to ucontext (also
// forced with -DF2I_SIM_UCONTEXT, to test that path on x86-64).
#pragma once
#include <stddef.h>
#include <stdint.h>

#if !defined(__x86_64__) || defined(F2I_SIM_UCONTEXT)
#include <ucontext.h>
#endif

namespace f2i_sim {

struct FiberContext {
#if defined(__x86_64__) && !defined(F2I_SIM_UCONTEXT)
  void* sp = nullptr;  // saved stack pointer; the registers live on the stack below it
#else
  ucontext_t uc;
#endif
};

// Saves the running context into `from` and resumes `to`.
void fiber_switch(FiberContext* from, FiberContext* to);

// Prepares `ctx` so that switching to it runs fn(arg) on the stack [stack, stack + size).
// fn must never return (it ends by switching away for good).
void fiber_init(FiberContext* ctx, void* stack, size_t size, void (*fn)(void*), void* arg);

// Stacks for simulated threads, each with a PROT_NONE guard page below it, kept for reuse
// across blocks and launches (only grows). Not thread-safe: used under the launch lock.
class StackPool {
 public:
  static constexpr size_t kStackBytes = 64 * 1024;
  // Makes sure at least n stacks exist; false if memory ran out.
  bool reserve(size_t n);
  void* stack(size_t i) const { return stacks_[i]; }
  // Index of the stack whose guard page holds `addr`, or -1.
  long guard_hit(uintptr_t addr) const;

 private:
  void** stacks_ = nullptr;
  size_t count_ = 0, capacity_ = 0;
};

}  // namespace f2i_sim
