// memory.cpp — device memory for the CPU execution harness: f2i_sim_alloc / free / protect.
//
// Each buffer is a separate mmap with PROT_NONE guard pages on both sides and its last byte at
// the end of a page, so a kernel's first access past the end faults (the runtime turns the
// fault into F2I_SIM_ERR_OUT_OF_BOUNDS). New memory is poisoned with 0xFF bytes (NaN in f16
// and f32) so reads of never-written device memory show. A registry (under a mutex: Rust test
// threads allocate concurrently) maps addresses back to allocations for fault messages, the
// schedule check's snapshots and the canary check.
#include "memory.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <mutex>

#include "f2i_sim_launch.h"

namespace f2i_sim {

namespace {
std::mutex g_registry_mutex;
// Keyed by the mapping's start.
std::map<uintptr_t, Allocation>& registry() {
  static std::map<uintptr_t, Allocation>* r = new std::map<uintptr_t, Allocation>();
  return *r;
}

// Under the registry lock: the allocation whose mapping contains addr, or nullptr.
const Allocation* lookup_locked(uintptr_t addr) {
  auto& r = registry();
  auto it = r.upper_bound(addr);
  if (it == r.begin()) return nullptr;
  --it;
  if (addr < it->second.map + it->second.map_bytes) return &it->second;
  return nullptr;
}
}  // namespace

size_t host_page_size() {
  static const size_t p = size_t(sysconf(_SC_PAGESIZE));
  return p;
}

bool find_allocation(uintptr_t addr, Allocation* out) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  const Allocation* a = lookup_locked(addr);
  if (!a) return false;
  *out = *a;
  return true;
}

std::string describe_address(uintptr_t addr) {
  Allocation a;
  if (!find_allocation(addr, &a)) return std::string();
  char buf[200];
  const uintptr_t end = a.user + a.bytes;
  if (addr < a.user) {
    snprintf(buf, sizeof buf, "%" PRIuPTR " bytes before the start of allocation %#" PRIxPTR
             " (%zu bytes)", a.user - addr, a.user, a.bytes);
  } else if (addr >= end) {
    snprintf(buf, sizeof buf, "%" PRIuPTR " bytes past the end of allocation %#" PRIxPTR
             " (%zu bytes)", addr - end, a.user, a.bytes);
  } else {
    snprintf(buf, sizeof buf, "allocation %#" PRIxPTR " (%zu bytes%s), byte offset %" PRIuPTR,
             a.user, a.bytes, a.readonly ? ", read-only" : "", addr - a.user);
  }
  return buf;
}

bool canaries_intact(const Allocation& a, std::string* what) {
  const size_t page = host_page_size();
  const uint8_t* lo = reinterpret_cast<const uint8_t*>(a.map + page);
  const uint8_t* start = reinterpret_cast<const uint8_t*>(a.user);
  const uint8_t* end = start + a.bytes;
  const uint8_t* hi = reinterpret_cast<const uint8_t*>(a.map + a.map_bytes - page);
  // Scan from the buffer outwards so the message names the nearest overwritten byte.
  for (const uint8_t* p = start; p > lo;) {
    --p;
    if (*p != 0xFF) {
      *what = describe_address(reinterpret_cast<uintptr_t>(p));
      return false;
    }
  }
  for (const uint8_t* p = end; p < hi; ++p) {
    if (*p != 0xFF) {
      *what = describe_address(reinterpret_cast<uintptr_t>(p));
      return false;
    }
  }
  return true;
}

}  // namespace f2i_sim

using namespace f2i_sim;

extern "C" void* f2i_sim_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  const size_t page = host_page_size();
  const size_t span = (bytes + 15) & ~size_t(15);
  if (span < bytes) return nullptr;
  const size_t data = (span + page - 1) / page * page;
  const size_t total = data + 2 * page;
  if (data < span || total < data) return nullptr;
  void* m = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  char* base = static_cast<char*>(m);
  if (mprotect(base + page, data, PROT_READ | PROT_WRITE) != 0) {
    munmap(m, total);
    return nullptr;
  }
  memset(base + page, 0xFF, data);  // poison, and the canaries around the buffer
  Allocation a;
  a.map = reinterpret_cast<uintptr_t>(m);
  a.map_bytes = total;
  a.user = a.map + page + data - span;
  a.bytes = bytes;
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    registry()[a.map] = a;
  }
  return reinterpret_cast<void*>(a.user);
}

extern "C" void f2i_sim_free(void* p) {
  if (!p) return;
  Allocation a;
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    const Allocation* found = lookup_locked(reinterpret_cast<uintptr_t>(p));
    if (!found || found->user != reinterpret_cast<uintptr_t>(p)) {
      fprintf(stderr, "f2i_sim_free: %p is not a live harness allocation (ignored)\n", p);
      return;
    }
    a = *found;
    registry().erase(a.map);
  }
  munmap(reinterpret_cast<void*>(a.map), a.map_bytes);
}

extern "C" int f2i_sim_protect(void* p, int readonly) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  auto& r = registry();
  auto it = r.upper_bound(reinterpret_cast<uintptr_t>(p));
  if (it == r.begin()) return -1;
  --it;
  Allocation& a = it->second;
  if (a.user != reinterpret_cast<uintptr_t>(p)) return -1;
  const size_t page = host_page_size();
  if (mprotect(reinterpret_cast<void*>(a.map + page), a.map_bytes - 2 * page,
               readonly ? PROT_READ : PROT_READ | PROT_WRITE) != 0)
    return -1;
  a.readonly = readonly != 0;
  return 0;
}

// 0 when [p, p + bytes) lies inside one live allocation's user bytes (and, with `writable`,
// one that is not write-protected); 1 otherwise. What a device-memory frame handed in by a
// caller is checked with, since a harness "device pointer" is a host address.
extern "C" int f2i_sim_owns(const void* p, size_t bytes, int writable) {
  const uintptr_t addr = reinterpret_cast<uintptr_t>(p);
  Allocation a;
  if (!addr || !find_allocation(addr, &a)) return 1;
  if (addr < a.user || addr - a.user > a.bytes || bytes > a.bytes - (addr - a.user)) return 1;
  return writable && a.readonly ? 1 : 0;
}
