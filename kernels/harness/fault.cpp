// fault.cpp — the SIGSEGV / SIGBUS handler behind fault.h.
//
// The handler only records the faulting address and siglongjmps; the message is built after
// the jump, outside signal context. The handler is installed once and stays installed (other
// code's faults are forwarded to the previous handler), because uninstalling races with Rust's
// own stack-overflow handler on other test threads.
#include "fault.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <mutex>

namespace f2i_sim {

namespace {
struct sigaction g_prev_segv, g_prev_bus;
std::once_flag g_install_once;
thread_local sigjmp_buf* t_env = nullptr;  // non-null while armed on this thread
Fault g_fault;                              // written by the handler, read after the jump
void* g_altstack = nullptr;                 // shared by launches (serialised)
const size_t kAltStackBytes = 64 * 1024;
bool g_altstack_ours = false;

void forward(int sig, siginfo_t* info, void* ctx) {
  const struct sigaction& prev = sig == SIGBUS ? g_prev_bus : g_prev_segv;
  if (prev.sa_flags & SA_SIGINFO) {
    if (prev.sa_sigaction) {
      prev.sa_sigaction(sig, info, ctx);
      return;
    }
  } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
    prev.sa_handler(sig);
    return;
  }
  // Default action: reinstall it and return, so the faulting instruction faults again.
  signal(sig, SIG_DFL);
}

void handler(int sig, siginfo_t* info, void* ctx) {
  sigjmp_buf* env = t_env;
  if (!env) {
    forward(sig, info, ctx);
    return;
  }
  t_env = nullptr;
  g_fault.addr = reinterpret_cast<uintptr_t>(info->si_addr);
  g_fault.signal = sig;
  g_fault.write = -1;
#if defined(__x86_64__) && defined(REG_ERR)
  const ucontext_t* uc = static_cast<const ucontext_t*>(ctx);
  g_fault.write = (uc->uc_mcontext.gregs[REG_ERR] & 2) ? 1 : 0;
#endif
  siglongjmp(*env, 1);
}

void install() {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &g_prev_segv);
  sigaction(SIGBUS, &sa, &g_prev_bus);
}
}  // namespace

void fault_arm(sigjmp_buf* env) {
  std::call_once(g_install_once, install);
  stack_t cur;
  g_altstack_ours = false;
  if (sigaltstack(nullptr, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
    if (!g_altstack) {
      void* m = mmap(nullptr, kAltStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m != MAP_FAILED) g_altstack = m;
    }
    if (g_altstack) {
      stack_t ss;
      ss.ss_sp = g_altstack;
      ss.ss_size = kAltStackBytes;
      ss.ss_flags = 0;
      g_altstack_ours = sigaltstack(&ss, nullptr) == 0;
    }
  }
  t_env = env;
}

void fault_disarm() {
  t_env = nullptr;
  if (g_altstack_ours) {
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
    g_altstack_ours = false;
  }
}

Fault last_fault() { return g_fault; }

}  // namespace f2i_sim
