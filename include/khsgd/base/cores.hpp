// The cores this process may run on, and how a thread waits on one for another core's write.
#pragma once

#include <sched.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace khsgd {

// The cores this process may run on: its CPU affinity (mpirun binds a rank to one, taskset and
// cgroups' cpusets narrow it), not the machine's count.
inline int allowed_cores() {
  cpu_set_t allowed;
  return sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 1;
}

// Of ranks with the given CPU affinities (rank r's at [r]), the other ranks that may run on a core
// that `rank` may run on: where ranks outnumber the cores, those are the ones that can only run
// while `rank` leaves its core to them. An empty set (an affinity that could not be read) counts as
// sharing with every rank.
inline std::vector<int> ranks_sharing_cores(const std::vector<cpu_set_t>& affinities, int rank) {
  const cpu_set_t& own = affinities[static_cast<size_t>(rank)];
  std::vector<int> sharing;
  for (size_t r = 0; r < affinities.size(); ++r) {
    if (static_cast<int>(r) == rank) continue;
    cpu_set_t both;
    CPU_AND(&both, &own, &affinities[r]);
    if (CPU_COUNT(&both) > 0 || CPU_COUNT(&own) == 0 || CPU_COUNT(&affinities[r]) == 0)
      sharing.push_back(static_cast<int>(r));
  }
  return sharing;
}

// One turn of a spinning wait: tells the core that this is a wait loop (x86's pause, ~20 ns on the
// development machine), which leaves the core's other hardware thread its share and ends the loop
// without a memory-order flush. A sched_yield() costs ~400 ns there: as long a delay again
// after the awaited write has landed.
inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

// The default of wait_spinning()'s `yield_first`: never.
struct NeverYieldFirst {
  bool operator()() const { return false; }
};

// Waits until done() holds: first up to `spins` turns of cpu_relax(), for a write that is near,
// then giving the core away between looks (sched_yield), for one that is far or whose writer
// shares this core; with `yields` >= 0, only that many times, and after them sleeping 50 us between
// looks, for a wait that may last (a yielding thread still takes its core whenever no other thread
// wants it). The count stops there: a long wait does not overflow it. A look of the spinning turns
// at which yield_first() holds yields instead, without spending a turn: for a writer known to need
// this core (mpi_comm.cpp: a rank that shares it and has not written yet).
template <class Done, class YieldFirst = NeverYieldFirst>
void wait_spinning(Done&& done, int spins, int yields = -1, YieldFirst&& yield_first = {}) {
  for (int64_t turn = 0; !done();) {  // 64 bits: spins + yields always fits
    if (turn < spins) {
      if (yield_first()) {
        sched_yield();
        continue;
      }
      ++turn;
      cpu_relax();
    } else if (yields < 0 || turn - spins < yields) {
      if (yields >= 0) ++turn;
      sched_yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
}

}  // namespace khsgd
