// launch.cpp — f2i_sim_launch: geometry checks, the grid loop, fault → error, and the schedule
// check.
//
// Schedule A runs the blocks in order and every barrier phase's threads forward. With
// F2I_SIM_CHECK_SCHEDULES the launch also runs under schedule B — blocks in reverse order,
// threads of every phase reversed (seed 0) or in a permutation drawn from the seed — starting
// from the same memory, and fails with F2I_SIM_ERR_SCHEDULE_MISMATCH naming the first byte the
// two wrote differently. The memory compared is every writable allocation a pointer argument
// of the kernel points into: other live allocations may belong to launches or copies of
// concurrent callers (cargo runs tests on several threads), whose bytes may change meanwhile.
// Not caught: races between blocks. Blocks run one at a time, so one block's read-modify-write
// is never interleaved with another's; the schedules only reorder whole blocks.
//
// Launches are serialised by one mutex: the scheduler, the shared-memory arena and the
// fault handler's jump target are process-wide.
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <mutex>
#include <string>
#include <vector>

#include "f2i_sim.h"
#include "f2i_sim_launch.h"
#include "fault.h"
#include "memory.h"
#include "scheduler.h"

namespace f2i_sim {
namespace {

std::mutex g_launch_mutex;

constexpr size_t kDefaultSharedLimit = 48 * 1024;
constexpr size_t kMaxSharedLimit = 227 * 1024;  // sm_90's opt-in maximum per block

struct Region {
  Allocation alloc;
  std::vector<uint8_t> before, after_a;  // snapshot, and schedule A's result
};
std::vector<Region> g_regions;  // reused across launches (keeps the buffers' capacity)
size_t g_nregions = 0;

void set_error(char* err, size_t len, const std::string& s) {
  if (!err || len == 0) return;
  const size_t n = s.size() < len - 1 ? s.size() : len - 1;
  memcpy(err, s.data(), n);
  err[n] = 0;
}

std::string fault_message(const Fault& f) {
  char buf[160];
  const char* kind = f.write == 1 ? "write" : f.write == 0 ? "read" : "access";
  snprintf(buf, sizeof buf, "%s: out-of-bounds %s at %#" PRIxPTR,
           f.signal == SIGBUS ? "SIGBUS" : "SIGSEGV", kind, f.addr);
  std::string s = scheduler_where() + ": " + buf;
  Allocation a;
  if (find_allocation(f.addr, &a)) {
    if (a.readonly && f.addr >= a.user && f.addr < a.user + a.bytes)
      s += " — a write to a read-only (frozen) buffer: ";
    else
      s += " — ";
    s += describe_address(f.addr);
  } else if (!scheduler_guard_name(f.addr).empty()) {
    s += " — " + scheduler_guard_name(f.addr);
  } else {
    s += " — not in or next to any harness allocation or shared memory (a bad pointer)";
  }
  return s;
}

// Every block of the grid in schedule order (reverse_blocks: last block first).
int run_blocks(const LaunchConfig& cfg, bool reverse_blocks, Order order, std::string* msg) {
  const uint64_t gx = cfg.grid.x, gy = cfg.grid.y;
  const uint64_t nb = gx * gy * cfg.grid.z;
  for (uint64_t k = 0; k < nb; ++k) {
    const uint64_t lin = reverse_blocks ? nb - 1 - k : k;
    const f2i_dim3 b{unsigned(lin % gx), unsigned((lin / gx) % gy), unsigned(lin / (gx * gy))};
    const int rc = scheduler_run_block(b, order, msg);
    if (rc != F2I_SIM_OK) return rc;
  }
  return F2I_SIM_OK;
}

// The schedule now running (launches are serialised by the launch mutex).
unsigned g_schedule = 0;

// One schedule of the launch, with memory faults turned into F2I_SIM_ERR_OUT_OF_BOUNDS.
int run_schedule(const LaunchConfig& cfg, bool reverse_blocks, Order order, std::string* msg) {
  g_schedule = reverse_blocks ? 1 : 0;
  sigjmp_buf env;
  if (sigsetjmp(env, 1) != 0) {
    fault_disarm();
    *msg = fault_message(last_fault());
    scheduler_abandon();
    return F2I_SIM_ERR_OUT_OF_BOUNDS;
  }
  fault_arm(&env);
  const int rc = run_blocks(cfg, reverse_blocks, order, msg);
  fault_disarm();
  if (rc != F2I_SIM_OK) return rc;
  // Writes into the alignment slack next to a buffer do not fault: check the canaries.
  for (size_t i = 0; i < g_nregions; ++i) {
    std::string what;
    if (!canaries_intact(g_regions[i].alloc, &what)) {
      *msg = std::string("kernel ") + cfg.kernel->name +
             ": out-of-bounds write (found after the launch, in the alignment slack): " + what;
      return F2I_SIM_ERR_OUT_OF_BOUNDS;
    }
  }
  return F2I_SIM_OK;
}

// The writable allocations the kernel's pointer arguments point into, once each.
void collect_regions(const f2i_sim_kernel* k, void** params) {
  g_nregions = 0;
  for (unsigned i = 0; i < k->nparams && i < 64; ++i) {
    if (!(k->pointer_params & (1ull << i))) continue;
    uintptr_t addr;
    memcpy(&addr, params[i], sizeof addr);
    Allocation a;
    if (!addr || !find_allocation(addr, &a) || a.readonly) continue;
    bool seen = false;
    for (size_t j = 0; j < g_nregions; ++j) seen |= g_regions[j].alloc.map == a.map;
    if (seen) continue;
    if (g_regions.size() <= g_nregions) g_regions.emplace_back();
    g_regions[g_nregions++].alloc = a;
  }
}

std::string geometry_error(const unsigned grid[3], const unsigned block[3], size_t dyn) {
  char buf[256];
  const unsigned long long threads =
      (unsigned long long)block[0] * block[1] * block[2];
  if (!grid[0] || !grid[1] || !grid[2] || !block[0] || !block[1] || !block[2])
    snprintf(buf, sizeof buf, "zero dimension");
  else if (threads > 1024)
    snprintf(buf, sizeof buf, "%llu threads per block (at most 1024)", threads);
  else if (block[2] > 64)
    snprintf(buf, sizeof buf, "block.z = %u (at most 64)", block[2]);
  else if (grid[0] > 0x7fffffffu || grid[1] > 65535 || grid[2] > 65535)
    snprintf(buf, sizeof buf, "grid too large (x ≤ 2^31-1, y and z ≤ 65535)");
  else if (dyn > kMaxSharedLimit)
    snprintf(buf, sizeof buf, "%zu bytes of dynamic shared memory (at most %zu)", dyn,
             kMaxSharedLimit);
  else
    return std::string();
  char full[400];
  snprintf(full, sizeof full, "bad launch geometry: grid (%u,%u,%u), block (%u,%u,%u): %s",
           grid[0], grid[1], grid[2], block[0], block[1], block[2], buf);
  return full;
}

}  // namespace
}  // namespace f2i_sim

using namespace f2i_sim;

extern "C" unsigned f2i_sim_schedule(void) { return g_schedule; }

extern "C" int f2i_sim_launch(const char* kernel, const unsigned grid[3],
                              const unsigned block[3], size_t dynamic_shared_bytes,
                              void** params, unsigned flags, uint64_t seed, char* err,
                              size_t err_len) {
  std::lock_guard<std::mutex> lock(g_launch_mutex);
  set_error(err, err_len, "");
  const f2i_sim_kernel* k = kernel ? f2i_sim_find_kernel(kernel) : nullptr;
  if (!k) {
    set_error(err, err_len, std::string("unknown kernel ") + (kernel ? kernel : "(null)"));
    return F2I_SIM_ERR_UNKNOWN_KERNEL;
  }
  const std::string bad = geometry_error(grid, block, dynamic_shared_bytes);
  if (!bad.empty()) {
    set_error(err, err_len, std::string("kernel ") + k->name + ": " + bad);
    return F2I_SIM_ERR_BAD_GEOMETRY;
  }
  LaunchConfig cfg;
  cfg.kernel = k;
  cfg.params = params;
  cfg.grid = f2i_dim3{grid[0], grid[1], grid[2]};
  cfg.block = f2i_dim3{block[0], block[1], block[2]};
  cfg.dynamic_shared = dynamic_shared_bytes;
  cfg.shared_limit = dynamic_shared_bytes > kDefaultSharedLimit ? kMaxSharedLimit
                                                                : kDefaultSharedLimit;
  cfg.seed = seed;
  std::string msg;
  if (!scheduler_prepare(cfg, &msg)) {
    set_error(err, err_len, std::string("kernel ") + k->name + ": " + msg);
    return F2I_SIM_ERR_OUT_OF_MEMORY;
  }
  collect_regions(k, params);
  const bool check = (flags & F2I_SIM_CHECK_SCHEDULES) != 0;
  if (check) {
    for (size_t i = 0; i < g_nregions; ++i) {
      Region& r = g_regions[i];
      const uint8_t* p = reinterpret_cast<const uint8_t*>(r.alloc.user);
      r.before.assign(p, p + r.alloc.bytes);
    }
  }
  int rc = run_schedule(cfg, false, Order::Forward, &msg);
  if (rc != F2I_SIM_OK || !check) {
    set_error(err, err_len, msg);
    return rc;
  }
  for (size_t i = 0; i < g_nregions; ++i) {
    Region& r = g_regions[i];
    uint8_t* p = reinterpret_cast<uint8_t*>(r.alloc.user);
    r.after_a.assign(p, p + r.alloc.bytes);
    memcpy(p, r.before.data(), r.alloc.bytes);
  }
  rc = run_schedule(cfg, true, seed ? Order::Random : Order::Reverse, &msg);
  if (rc != F2I_SIM_OK) {
    set_error(err, err_len, msg + " (in schedule B only: blocks reversed, threads " +
                                (seed ? "permuted" : "reversed") + ")");
    return rc;
  }
  for (size_t i = 0; i < g_nregions; ++i) {
    Region& r = g_regions[i];
    const uint8_t* p = reinterpret_cast<const uint8_t*>(r.alloc.user);
    if (memcmp(p, r.after_a.data(), r.alloc.bytes) == 0) continue;
    size_t off = 0;
    while (p[off] == r.after_a[off]) ++off;
    char buf[400];
    snprintf(buf, sizeof buf,
             "kernel %s: the two thread schedules wrote different bytes (a missing barrier or "
             "a race?): first at %#" PRIxPTR ", allocation %#" PRIxPTR " (%zu bytes), byte "
             "offset %zu: schedule A (forward) 0x%02x, schedule B (blocks reversed, threads %s) "
             "0x%02x",
             k->name, r.alloc.user + off, r.alloc.user, r.alloc.bytes, off, r.after_a[off],
             seed ? "permuted" : "reversed", p[off]);
    set_error(err, err_len, buf);
    return F2I_SIM_ERR_SCHEDULE_MISMATCH;
  }
  return F2I_SIM_OK;
}
