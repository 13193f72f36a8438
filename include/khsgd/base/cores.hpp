// The cores this process may run on: its CPU affinity (mpirun binds a rank to one, taskset and
// cgroups' cpusets narrow it), not the machine's count.
#pragma once

#include <sched.h>

namespace khsgd {

inline int allowed_cores() {
  cpu_set_t allowed;
  return sched_getaffinity(0, sizeof allowed, &allowed) == 0 ? CPU_COUNT(&allowed) : 1;
}

}  // namespace khsgd
