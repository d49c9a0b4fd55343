// scheduler.cpp — runs one block of a launch the way a GPU's SM does, as far as a program can
// observe: every thread is a fiber (fiber.h), scheduled cooperatively on the launching OS
// thread; f2i_sim_syncthreads is a barrier over the block, warp collectives (f2i_sim_syncwarp,
// f2i_sim_warp_gather, on which shuffles and votes are built) are barriers over a warp.
//
// Scheduling: a sweep resumes every runnable fiber, in the phase's order, until it blocks (at
// the block barrier or a warp collective) or returns; a blocking fiber switches straight to the
// sweep's next runnable one (one context switch per hand-over, not two through the
// scheduler), and the sweep's last returns to the scheduler. The last lane to reach a warp collective
// performs it and releases its warp. When no fiber can run: all returned → the block is done;
// all at the block barrier → the next phase starts (with a new order); anything else is a
// deadlock — a barrier some thread can never reach — reported as F2I_SIM_ERR_DIVERGENT_BARRIER
// instead of hanging. Kernel code that spins waiting for another thread would still hang: there
// is no preemption.
//
// Shared memory is one arena per launch (guard pages around it): dynamic shared memory at its
// start, static arrays after it in order of first request; poisoned with 0xFF at every block's
// start (dynamic) and at each static array's first request in a block.
#include "scheduler.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fault.h"
#include "fiber.h"
#include "memory.h"

thread_local f2i_dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace f2i_sim {

namespace {

enum class St : uint8_t { Runnable, AtBarrier, AtWarp, Done, Failed };
enum class Op : uint8_t { None, Sync, Gather };

constexpr unsigned kMaxThreads = 1024;
constexpr unsigned kMaxExits = 8;
constexpr unsigned kMaxGatherBytes = 256;
constexpr unsigned kMaxStatic = 64;
constexpr size_t kSharedArenaBytes = 227 * 1024;
// The arena rounded up to whole pages, and the guard size around it.
size_t page() { return host_page_size(); }
size_t arena_pages() { return (kSharedArenaBytes + page() - 1) / page() * page(); }

struct ExitFn {
  void (*fn)(void*);
  void* arg;
};

struct Fiber {
  FiberContext ctx;
  St state;
  Op op;
  unsigned bytes;  // gather bytes per lane
  unsigned id;     // linear thread id in the block
  f2i_dim3 tid;
  const void* src;
  void* dst;
  unsigned static_index;  // how many static shared arrays this thread has requested
  void* slot;             // f2i_sim_thread_slot
  unsigned n_exit;
  ExitFn exits[kMaxExits];
};

struct Warp {
  unsigned arrived, live;
  // The last gather's 32 slots; each lane copies them out when it resumes (on its own, hot,
  // stack). Not overwritten before every lane has: the next gather completes only after all
  // lanes arrived at it.
  alignas(16) unsigned char slots[32 * 256];
};

struct StaticArray {
  size_t offset, bytes;
};

struct State {
  LaunchConfig cfg;
  unsigned n = 0;  // threads per block
  Fiber* fibers = nullptr;
  unsigned* order = nullptr;
  Warp warps[kMaxThreads / 32];
  StackPool stacks;
  FiberContext sched;
  Fiber* cur = nullptr;
  unsigned at_barrier = 0, done = 0;
  unsigned sweep_pos = 0;  // position of the current sweep in `order`
  int status = F2I_SIM_OK;
  std::string msg;
  bool running = false;      // a block is in progress
  sigjmp_buf* abandon_env = nullptr;  // set while abandon runs at-exit functions
  f2i_dim3 block_idx;
  uint64_t block_linear = 0;
  uint8_t* smem = nullptr;
  StaticArray statics[kMaxStatic];
  unsigned n_static = 0;
  size_t static_end = 0;
};
State g;

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

std::string dim(f2i_dim3 d) { return fmt("(%u,%u,%u)", d.x, d.y, d.z); }

std::string block_where() {
  return fmt("kernel %s, block %s", g.cfg.kernel ? g.cfg.kernel->name : "?",
             dim(g.block_idx).c_str());
}

const char* op_name(Op op) {
  switch (op) {
    case Op::Sync: return "f2i_sim_syncwarp";
    case Op::Gather: return "a warp shuffle/vote (f2i_sim_warp_gather)";
    default: return "nothing";
  }
}

[[noreturn]] void off_harness(const char* what) {
  fprintf(stderr, "f2i_sim: %s called outside a harness launch\n", what);
  abort();
}

inline Fiber* current(const char* what) {
  Fiber* f = g.cur;
  if (__builtin_expect(f == nullptr, 0)) off_harness(what);
  return f;
}

// The next runnable fiber of the current sweep, or nullptr at the sweep's end.
inline Fiber* next_runnable() {
  while (g.sweep_pos < g.n) {
    Fiber* f = &g.fibers[g.order[g.sweep_pos++]];
    if (f->state == St::Runnable) return f;
  }
  return nullptr;
}

// Suspends f (which has set its state) and runs the sweep's next runnable fiber directly —
// one switch instead of two through the scheduler — or returns to the scheduler at the sweep's
// end. Returns when something resumes f.
inline void yield(Fiber* f) {
  Fiber* next = next_runnable();
  if (next) {
    threadIdx = next->tid;
    g.cur = next;
    fiber_switch(&f->ctx, &next->ctx);
  } else {
    fiber_switch(&f->ctx, &g.sched);
  }
}

[[noreturn]] void fail_current(int status, const std::string& what) {
  Fiber* f = current("f2i_sim_fail");
  if (g.abandon_env) siglongjmp(*g.abandon_env, 2);  // already failing: skip this function
  if (g.status == F2I_SIM_OK) {
    g.status = status;
    g.msg = block_where() + ", thread " + dim(f->tid) + ": " + what;
  }
  f->state = St::Failed;
  fiber_switch(&f->ctx, &g.sched);  // straight to the scheduler, which stops the block
  abort();                          // a failed fiber is never resumed
}

void run_exits(Fiber* f) {
  while (f->n_exit) {
    const ExitFn e = f->exits[--f->n_exit];
    e.fn(e.arg);
  }
}

void fiber_main(void* arg) {
  Fiber* f = static_cast<Fiber*>(arg);
  g.cfg.kernel->entry(g.cfg.params);
  run_exits(f);
  f->state = St::Done;
  ++g.done;
  yield(f);
  abort();
}

inline void resume(Fiber* f) {
  threadIdx = f->tid;
  g.cur = f;
  fiber_switch(&g.sched, &f->ctx);
  g.cur = nullptr;
}

uint64_t splitmix(uint64_t* s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void make_order(Order order, unsigned phase) {
  const unsigned n = g.n;
  switch (order) {
    case Order::Forward:
      for (unsigned i = 0; i < n; ++i) g.order[i] = i;
      break;
    case Order::Reverse:
      for (unsigned i = 0; i < n; ++i) g.order[i] = n - 1 - i;
      break;
    case Order::Random: {
      uint64_t s = g.cfg.seed ^ (g.block_linear * 0xD1B54A32D192ED03ull) ^
                   (uint64_t(phase) * 0x8CB92BA72F3D8DD7ull);
      for (unsigned i = 0; i < n; ++i) g.order[i] = i;
      for (unsigned i = n; i > 1; --i) {
        const unsigned j = unsigned(splitmix(&s) % i);
        const unsigned t = g.order[i - 1];
        g.order[i - 1] = g.order[j];
        g.order[j] = t;
      }
      break;
    }
  }
}

// Why no fiber can run although not all returned.
std::string deadlock_message() {
  const Fiber *barrier = nullptr, *warp = nullptr, *done = nullptr;
  for (unsigned i = 0; i < g.n; ++i) {
    const Fiber& f = g.fibers[i];
    if (f.state == St::AtBarrier && !barrier) barrier = &f;
    if (f.state == St::AtWarp && !warp) warp = &f;
    if (f.state == St::Done && !done) done = &f;
  }
  std::string s = block_where() + ": ";
  if (barrier && done) {
    s += fmt("thread %s returned while thread %s waits at f2i_syncthreads (%u of %u threads "
             "reached the barrier): a barrier not reached by every thread",
             dim(done->tid).c_str(), dim(barrier->tid).c_str(), g.at_barrier, g.n);
  } else if (barrier && warp) {
    s += fmt("thread %s waits at f2i_syncthreads while thread %s waits at %s: they can never "
             "meet",
             dim(barrier->tid).c_str(), dim(warp->tid).c_str(), op_name(warp->op));
  } else if (warp) {
    const unsigned base = warp->id & ~31u, w = warp->id >> 5;
    const Fiber* missing = nullptr;
    for (unsigned l = 0; l < g.warps[w].live && !missing; ++l)
      if (g.fibers[base + l].state != St::AtWarp) missing = &g.fibers[base + l];
    s += fmt("thread %s waits at %s, which lane %u of warp %u (thread %s) never reaches (it "
             "returned)",
             dim(warp->tid).c_str(), op_name(warp->op), missing ? missing->id & 31u : 0u, w,
             missing ? dim(missing->tid).c_str() : "?");
  } else {
    s += "no thread can run (internal error)";
  }
  return s;
}

void abandon_fiber(Fiber* f) {
  sigjmp_buf env;
  g.abandon_env = &env;
  g.cur = f;
  threadIdx = f->tid;
  while (f->n_exit) {
    if (sigsetjmp(env, 1) != 0) {
      fault_disarm();
      continue;  // that function faulted or failed: skip it
    }
    fault_arm(&env);
    const ExitFn e = f->exits[--f->n_exit];
    e.fn(e.arg);
    fault_disarm();
  }
  g.abandon_env = nullptr;
  g.cur = nullptr;
}

// memcpy of a lane's value (k = 1) or a warp's slots (k = 32): fixed sizes for the common
// widths, so the compiler emits vector moves (its inline `rep movs` for a variable size costs
// more than the whole rest of a shuffle).
inline void copy_lanes(void* dst, const void* src, unsigned bytes, unsigned k) {
  switch (bytes) {
    case 4:
      if (k == 32) memcpy(dst, src, 32 * 4); else memcpy(dst, src, 4);
      return;
    case 8:
      if (k == 32) memcpy(dst, src, 32 * 8); else memcpy(dst, src, 8);
      return;
    case 16:
      if (k == 32) memcpy(dst, src, 32 * 16); else memcpy(dst, src, 16);
      return;
    default:
      memcpy(dst, src, size_t(bytes) * k);
  }
}

void warp_collective(Op op, unsigned mask, const void* src, void* dst, unsigned bytes) {
  Fiber* f = current(op_name(op));
  const unsigned w = f->id >> 5;
  Warp& wp = g.warps[w];
  const unsigned live_mask = wp.live == 32 ? 0xffffffffu : (1u << wp.live) - 1u;
  if (mask != 0xffffffffu && mask != live_mask)
    fail_current(F2I_SIM_ERR_UNSUPPORTED,
                 fmt("%s with mask %#x: only full-warp masks are supported (warp %u has lanes "
                     "%#x)", op_name(op), mask, w, live_mask));
  if (bytes > kMaxGatherBytes)
    fail_current(F2I_SIM_ERR_UNSUPPORTED,
                 fmt("warp gather of %u bytes per lane (at most %u)", bytes, kMaxGatherBytes));
  f->op = op;
  f->src = src;
  f->dst = dst;
  f->bytes = bytes;
  if (++wp.arrived < wp.live) {
    f->state = St::AtWarp;
    yield(f);
    // Released by the last lane, which filled the warp's slots.
    if (op == Op::Gather) copy_lanes(dst, wp.slots, bytes, 32);
    return;
  }
  wp.arrived = 0;
  Fiber* lanes = &g.fibers[w * 32];
  for (unsigned l = 0; l < wp.live; ++l)
    if (lanes[l].op != op || lanes[l].bytes != bytes)
      fail_current(F2I_SIM_ERR_DIVERGENT_BARRIER,
                   fmt("warp %u: lane %u is at %s (%u bytes) while lane %u is at %s (%u bytes)",
                       w, f->id & 31u, op_name(op), bytes, l, op_name(lanes[l].op),
                       lanes[l].bytes));
  if (op == Op::Gather) {
    unsigned char* all = wp.slots;
    for (unsigned l = 0; l < wp.live; ++l) copy_lanes(all + l * bytes, lanes[l].src, bytes, 1);
    if (wp.live < 32) memset(all + wp.live * bytes, 0xFF, (32 - wp.live) * bytes);
    copy_lanes(dst, all, bytes, 32);
  }
  for (unsigned l = 0; l < wp.live; ++l) {
    lanes[l].op = Op::None;
    lanes[l].state = St::Runnable;
  }
}

}  // namespace

bool scheduler_prepare(const LaunchConfig& cfg, std::string* err) {
  g.cfg = cfg;
  g.n = cfg.block.x * cfg.block.y * cfg.block.z;
  if (!g.fibers) {
    g.fibers = new Fiber[kMaxThreads];
    g.order = new unsigned[kMaxThreads];
  }
  if (!g.stacks.reserve(g.n)) {
    *err = "cannot map the simulated threads' stacks";
    return false;
  }
  if (!g.smem) {
    void* m = mmap(nullptr, arena_pages() + 2 * page(), PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED ||
        mprotect(static_cast<char*>(m) + page(), arena_pages(), PROT_READ | PROT_WRITE) != 0) {
      *err = "cannot map shared memory";
      return false;
    }
    g.smem = static_cast<uint8_t*>(m) + page();
  }
  const unsigned bx = cfg.block.x, by = cfg.block.y;
  for (unsigned i = 0; i < g.n; ++i) {
    Fiber& f = g.fibers[i];
    f.id = i;
    f.tid = f2i_dim3{i % bx, (i / bx) % by, i / (bx * by)};
  }
  for (unsigned w = 0; w * 32 < g.n; ++w) {
    g.warps[w].arrived = 0;
    g.warps[w].live = g.n - w * 32 < 32 ? g.n - w * 32 : 32;
  }
  return true;
}

int scheduler_run_block(f2i_dim3 b, Order order, std::string* err) {
  g.block_idx = b;
  g.block_linear = b.x + uint64_t(g.cfg.grid.x) * (b.y + uint64_t(g.cfg.grid.y) * b.z);
  blockIdx = b;
  blockDim = g.cfg.block;
  gridDim = g.cfg.grid;
  const unsigned n = g.n;
  for (unsigned i = 0; i < n; ++i) {
    Fiber& f = g.fibers[i];
    f.state = St::Runnable;
    f.op = Op::None;
    f.bytes = 0;
    f.static_index = 0;
    f.slot = nullptr;
    f.n_exit = 0;
    fiber_init(&f.ctx, g.stacks.stack(i), StackPool::kStackBytes, fiber_main, &f);
  }
  for (unsigned w = 0; w * 32 < n; ++w) g.warps[w].arrived = 0;
  g.at_barrier = g.done = 0;
  g.status = F2I_SIM_OK;
  memset(g.smem, 0xFF, g.cfg.dynamic_shared);
  g.n_static = 0;
  g.static_end = (g.cfg.dynamic_shared + 15) & ~size_t(15);
  g.running = true;
  unsigned phase = 0;
  make_order(order, phase);
  for (;;) {
    // One sweep: the fibers hand over to each other (yield) and the last one returns here.
    g.sweep_pos = 0;
    Fiber* first = next_runnable();
    if (first) {
      resume(first);
      if (g.status != F2I_SIM_OK) {
        *err = g.msg;
        scheduler_abandon();
        return g.status;
      }
      continue;
    }
    if (g.done == n) break;
    if (g.at_barrier == n) {
      for (unsigned i = 0; i < n; ++i) g.fibers[i].state = St::Runnable;
      g.at_barrier = 0;
      make_order(order, ++phase);
      continue;
    }
    *err = deadlock_message();
    scheduler_abandon();
    return F2I_SIM_ERR_DIVERGENT_BARRIER;
  }
  g.running = false;
  return F2I_SIM_OK;
}

void scheduler_abandon() {
  if (!g.running) return;
  g.running = false;
  g.cur = nullptr;
  for (unsigned i = 0; i < g.n; ++i)
    if (g.fibers[i].state != St::Done && g.fibers[i].n_exit) abandon_fiber(&g.fibers[i]);
}

std::string scheduler_where() {
  if (g.cur) return block_where() + ", thread " + dim(g.cur->tid);
  return block_where() + ", in the runtime";
}

std::string scheduler_guard_name(uintptr_t addr) {
  const long stack = g.stacks.guard_hit(addr);
  if (stack >= 0)
    return fmt("stack overflow of simulated thread #%ld (%zu KiB stacks)", stack,
               StackPool::kStackBytes / 1024);
  if (g.smem) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(g.smem), hi = lo + arena_pages();
    if (addr < lo && addr >= lo - page()) return "below the start of shared memory";
    if (addr >= hi && addr < hi + page())
      return "beyond the end of shared memory (227 KiB arena)";
  }
  return std::string();
}

}  // namespace f2i_sim

using namespace f2i_sim;

extern "C" {

void f2i_sim_syncthreads(void) {
  Fiber* f = current("f2i_sim_syncthreads");
  f->state = St::AtBarrier;
  ++g.at_barrier;
  yield(f);
}

void f2i_sim_syncwarp(unsigned mask) { warp_collective(Op::Sync, mask, nullptr, nullptr, 0); }

void f2i_sim_warp_gather(unsigned mask, const void* src, void* dst, unsigned bytes) {
  warp_collective(Op::Gather, mask, src, dst, bytes);
}

unsigned f2i_sim_lane(void) { return current("f2i_sim_lane")->id & 31u; }

void* f2i_sim_shared_static(size_t bytes, size_t align) {
  Fiber* f = current("f2i_sim_shared_static");
  const unsigned k = f->static_index++;
  if (k < g.n_static) {
    if (g.statics[k].bytes != bytes)
      fail_current(F2I_SIM_ERR_UNSUPPORTED,
                   fmt("static shared array #%u requested with %zu bytes, but another thread "
                       "requested it with %zu",
                       k, bytes, g.statics[k].bytes));
    return g.smem + g.statics[k].offset;
  }
  if (k >= kMaxStatic)
    fail_current(F2I_SIM_ERR_UNSUPPORTED, fmt("more than %u static shared arrays", kMaxStatic));
  if (align < 16) align = 16;
  const size_t offset = (g.static_end + align - 1) / align * align;
  if (offset + bytes > g.cfg.shared_limit || offset + bytes < offset)
    fail_current(F2I_SIM_ERR_BAD_GEOMETRY,
                 fmt("shared memory: static array #%u (%zu bytes) brings static + dynamic "
                     "(%zu) to %zu bytes, over the %zu-byte limit",
                     k, bytes, g.cfg.dynamic_shared, offset + bytes, g.cfg.shared_limit));
  g.statics[k] = StaticArray{offset, bytes};
  g.n_static = k + 1;
  g.static_end = offset + bytes;
  memset(g.smem + offset, 0xFF, bytes);
  return g.smem + offset;
}

void* f2i_sim_shared_dynamic(void) {
  current("f2i_sim_shared_dynamic");
  return g.smem;
}

void** f2i_sim_thread_slot(void) { return &current("f2i_sim_thread_slot")->slot; }

void f2i_sim_at_thread_exit(void (*fn)(void*), void* arg) {
  Fiber* f = current("f2i_sim_at_thread_exit");
  if (f->n_exit == kMaxExits)
    fail_current(F2I_SIM_ERR_UNSUPPORTED,
                 fmt("more than %u f2i_sim_at_thread_exit functions in one thread", kMaxExits));
  f->exits[f->n_exit++] = ExitFn{fn, arg};
}

void f2i_sim_fail(int status, const char* what) {
  fail_current(status != F2I_SIM_OK ? status : F2I_SIM_ERR_UNSUPPORTED,
               what ? what : "f2i_sim_fail");
}

}  // extern "C"
