// comm.hpp's sum_in_rank_order, in khsgd_util: every communicator uses it, the c10d ones in
// khsgd_torch (a shared library) and MPI's and the in-process workers' in the programs.
#include "khsgd/comm/comm.hpp"

namespace khsgd {

void sum_in_rank_order(const float* gathered, int ranks, int64_t count, float* out) {
  for (int64_t i = 0; i < count; ++i) {
    float total = gathered[i];
    for (int r = 1; r < ranks; ++r) total += gathered[r * count + i];
    out[i] = total;
  }
}

}  // namespace khsgd
