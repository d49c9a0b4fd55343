// fault.h — turning memory faults in kernel code into launch errors (internal to the runtime).
//
// While armed on the launching OS thread, a SIGSEGV / SIGBUS (guard page, write to a protected
// buffer, any bad address; also a simulated thread's stack overflow, handled on an alternate
// signal stack) siglongjmps to the launcher's jump buffer instead of killing the process. Any
// other fault (another thread, or no launch running) goes to the handler that was installed
// before ours, or gets the default action.
#pragma once
#include <setjmp.h>
#include <stdint.h>

namespace f2i_sim {

struct Fault {
  uintptr_t addr = 0;
  int signal = 0;
  int write = -1;  // 1 write, 0 read, -1 unknown
};

// Installs the handler (once per process) and, if this thread has none, an alternate signal
// stack; from now on faults on this thread jump to *env with value 1. Call under the launch
// lock (the alternate stack is shared by launches).
void fault_arm(sigjmp_buf* env);
// Stops catching faults on this thread and removes the alternate stack fault_arm added.
void fault_disarm();
// The last fault caught.
Fault last_fault();

}  // namespace f2i_sim
