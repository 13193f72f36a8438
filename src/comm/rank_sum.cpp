// comm.hpp's sum_in_rank_order, in khsgd_util: every communicator uses it, the c10d ones in
// khsgd_torch (a shared library) and MPI's and the in-process workers' in the programs.
#include "khsgd/base/vector_clones.hpp"
#include "khsgd/comm/comm.hpp"

namespace khsgd {

// Rank after rank, each rank's row added to the running sums: every column still adds the ranks in
// order, and the columns go in vector lanes. (Column after column, each column's sum is one chain
// of dependent adds as long as the ranks: 64 in-process workers spent ~0.7 us a step there.)
KHSGD_VECTOR_CLONES void sum_in_rank_order(const float* gathered, int ranks, int64_t count,
                                           float* out) {
  if (out != gathered)
    for (int64_t i = 0; i < count; ++i) out[i] = gathered[i];
  for (int r = 1; r < ranks; ++r) {
    const float* __restrict row = gathered + r * count;
    float* __restrict sums = out;
    for (int64_t i = 0; i < count; ++i) sums[i] += row[i];
  }
}

}  // namespace khsgd
