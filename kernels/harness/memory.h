// memory.h — the harness's device memory as the runtime sees it: a registry of live
// allocations (internal to the harness runtime; the public half is in f2i_sim_launch.h).
//
// Every allocation is its own mapping: [guard page][data pages][guard page], the buffer's end
// at the end of the last data page, its start 16-byte aligned, the slack before the start and
// after the end (< 16 bytes) filled with 0xFF canaries that are checked after each launch.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <string>

namespace f2i_sim {

struct Allocation {
  uintptr_t map = 0;      // start of the mapping (the low guard page)
  size_t map_bytes = 0;   // whole mapping, guards included
  uintptr_t user = 0;     // what f2i_sim_alloc returned
  size_t bytes = 0;       // what was asked for
  bool readonly = false;  // f2i_sim_protect'ed
};

// The allocation whose mapping (guard pages included) contains `addr`.
bool find_allocation(uintptr_t addr, Allocation* out);

// "allocation 0x… (N bytes), byte offset K" / "M bytes past the end of allocation …" /
// "the low guard page of …", or an empty string when `addr` is near no allocation.
std::string describe_address(uintptr_t addr);

// True when the canary slack around `a` still holds 0xFF; otherwise describes the first
// overwritten byte in *what.
bool canaries_intact(const Allocation& a, std::string* what);

size_t host_page_size();

}  // namespace f2i_sim
