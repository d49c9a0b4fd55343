// fiber.cpp — the context switch and stack pool declared in fiber.h.
//
// x86-64 (System V): f2i_fiber_switch_asm pushes rbp, rbx, r12–r15 and an 8-byte slot holding
// MXCSR and the x87 control word, stores rsp into *from, loads `to`, and pops the same frame
// (reloading MXCSR / the control word only when they differ: they almost never do).
// A new context is a hand-built frame of that shape whose return address is a small trampoline
// that calls fn(arg) with fn in r13 and arg in r12. Everything else (caller-saved registers) is
// already spilled by the compiler around the call, as for any function call.
#include "fiber.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__) && !defined(F2I_SIM_UCONTEXT)
extern "C" void f2i_fiber_switch_asm(void** from_sp, void* to_sp);
extern "C" void f2i_fiber_start_asm(void);

__asm__(
    ".pushsection .text\n"
    ".globl f2i_fiber_switch_asm\n"
    ".hidden f2i_fiber_switch_asm\n"
    ".type f2i_fiber_switch_asm,@function\n"
    ".p2align 4\n"
    "f2i_fiber_switch_asm:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movl (%rsp), %eax\n"       // this context's MXCSR / x87 control word
    "  movzwl 4(%rsp), %edx\n"
    "  movq %rsi, %rsp\n"
    "  cmpl (%rsp), %eax\n"       // reload only what differs (ldmxcsr / fldcw are slow)
    "  je 1f\n"
    "  ldmxcsr (%rsp)\n"
    "1:\n"
    "  cmpw 4(%rsp), %dx\n"
    "  je 2f\n"
    "  fldcw 4(%rsp)\n"
    "2:\n"
    "  addq $8, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size f2i_fiber_switch_asm, .-f2i_fiber_switch_asm\n"
    ".globl f2i_fiber_start_asm\n"
    ".hidden f2i_fiber_start_asm\n"
    ".type f2i_fiber_start_asm,@function\n"
    ".p2align 4\n"
    "f2i_fiber_start_asm:\n"
    "  movq %r12, %rdi\n"
    "  callq *%r13\n"
    "  ud2\n"
    ".size f2i_fiber_start_asm, .-f2i_fiber_start_asm\n"
    ".popsection\n");
#endif

namespace f2i_sim {

#if defined(__x86_64__) && !defined(F2I_SIM_UCONTEXT)
void fiber_switch(FiberContext* from, FiberContext* to) { f2i_fiber_switch_asm(&from->sp, to->sp); }

void fiber_init(FiberContext* ctx, void* stack, size_t size, void (*fn)(void*), void* arg) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + size) & ~uintptr_t(15);
  // Frame, from the saved sp upwards: [mxcsr|fpcw] r15 r14 r13 r12 rbx rbp ret. After `ret`
  // rsp = sp + 64 must be 16-byte aligned so that the trampoline's call is ABI-conformant.
  uint64_t* sp = reinterpret_cast<uint64_t*>(top - 16 - 64);
  uint32_t mxcsr;
  uint16_t fpcw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fpcw));
  sp[0] = uint64_t(mxcsr) | (uint64_t(fpcw) << 32);
  sp[1] = 0;                                     // r15
  sp[2] = 0;                                     // r14
  sp[3] = reinterpret_cast<uint64_t>(fn);        // r13
  sp[4] = reinterpret_cast<uint64_t>(arg);       // r12
  sp[5] = 0;                                     // rbx
  sp[6] = 0;                                     // rbp
  sp[7] = reinterpret_cast<uint64_t>(&f2i_fiber_start_asm);
  ctx->sp = sp;
}
#else
void fiber_switch(FiberContext* from, FiberContext* to) { swapcontext(&from->uc, &to->uc); }

static void start_trampoline(unsigned fn_lo, unsigned fn_hi, unsigned arg_lo, unsigned arg_hi) {
  auto fn = reinterpret_cast<void (*)(void*)>((uintptr_t(fn_hi) << 32) | fn_lo);
  void* arg = reinterpret_cast<void*>((uintptr_t(arg_hi) << 32) | arg_lo);
  fn(arg);
  abort();
}

void fiber_init(FiberContext* ctx, void* stack, size_t size, void (*fn)(void*), void* arg) {
  getcontext(&ctx->uc);
  ctx->uc.uc_stack.ss_sp = stack;
  ctx->uc.uc_stack.ss_size = size;
  ctx->uc.uc_link = nullptr;
  uintptr_t f = reinterpret_cast<uintptr_t>(fn), a = reinterpret_cast<uintptr_t>(arg);
  makecontext(&ctx->uc, reinterpret_cast<void (*)()>(start_trampoline), 4, unsigned(f),
              unsigned(f >> 32), unsigned(a), unsigned(a >> 32));
}
#endif

static size_t page_size() {
  static const size_t p = size_t(sysconf(_SC_PAGESIZE));
  return p;
}

bool StackPool::reserve(size_t n) {
  if (n <= count_) return true;
  if (n > capacity_) {
    size_t cap = capacity_ ? capacity_ : 64;
    while (cap < n) cap *= 2;
    void** grown = static_cast<void**>(realloc(stacks_, cap * sizeof(void*)));
    if (!grown) return false;
    stacks_ = grown;
    capacity_ = cap;
  }
  const size_t guard = page_size();
  while (count_ < n) {
    void* m = mmap(nullptr, guard + kStackBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return false;
    if (mprotect(m, guard, PROT_NONE) != 0) {
      munmap(m, guard + kStackBytes);
      return false;
    }
    stacks_[count_++] = static_cast<char*>(m) + guard;
  }
  return true;
}

long StackPool::guard_hit(uintptr_t addr) const {
  const size_t guard = page_size();
  for (size_t i = 0; i < count_; ++i) {
    uintptr_t s = reinterpret_cast<uintptr_t>(stacks_[i]);
    if (addr >= s - guard && addr < s) return long(i);
  }
  return -1;
}

}  // namespace f2i_sim
