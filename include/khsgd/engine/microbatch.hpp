// The examples of one optimizer step, gathered side by side so that their arithmetic runs in
// vector lanes (ALGORITHM.md §2: the per-example gradients, the step loop's hot spot).
//
// A step's examples are independent until their gradients are combined, so their logits are
// computed together: feature j of every example of a block is multiplied and added before
// feature j + 1, the block's accumulators in vector registers.
// Each example's dot product still accumulates in double in j order, exactly as logit() does, so
// the results are bit for bit those of one example at a time; only the order in which independent
// examples advance changes, which the compiler turns into SIMD instructions.
#pragma once

#include <cstdint>
#include <vector>

#include "khsgd/base/vector_clones.hpp"

namespace khsgd {

class Microbatch {
 public:
  // Examples advance in blocks of this many lanes (four SSE2 registers of doubles).
  static constexpr int64_t kLanes = 8;

  // Room for `capacity` examples of d features.
  Microbatch(int64_t capacity, int64_t d);

  // Takes rows[0..count) of X [*, d] and their labels y (count <= capacity). X must outlive the
  // calls below: the rows are read where they are (copying them costs more than the arithmetic).
  void gather(const float* X, const float* y, const int64_t* rows, int64_t count);
  // Rows a later gather() will take (count <= capacity), asked of the memory system while this
  // gather's examples are computed: the step loop's order is known in advance, and rows in a
  // random order otherwise stall every step. Their labels are asked for at once; the rows, every
  // cache line of each, a share before each block's dot products and the rest before the
  // gradients, so that the misses are asked for a few at a time rather than all at once (all 32
  // lines of the next step at once, D-RR's epoch took 1.4-2x as long on a machine where a row in a
  // random order cost 30-40 ns: README, Speed). Call after gather(), which forgets the rows of the
  // last call.
  void fetch_ahead(const float* X, const float* y, const int64_t* rows, int64_t count);

  int64_t size() const { return count_; }

  // dots[i] = sum_j double(rows[i][j]) * theta[j] for the kLanes rows, each summed in j order as
  // logit() does (bit for bit its dot product); the rows advance side by side in vector lanes.
  static void block_dots(const float* const* rows, const float* theta, int64_t d, double* dots);

  // g_i = (sigma(z_i) - y_i) [x_i; 1]: G is [size, d + 1].
  void per_example_gradients(const float* theta, float* G);
  // sum_i ((sigma(z_i) - y_i) / size) [x_i; 1], summed in example order, as autograd of the mean
  // binary cross-entropy gives it.
  void mean_loss_gradient(const float* theta, float* grad) { mean_loss_gradients(theta, 1, grad); }
  // The same for each of `groups` equal runs of consecutive examples (the workers of one process,
  // each with its own microbatch): grads is [groups, d + 1], group g's gradient over its
  // size / groups examples, each exactly as mean_loss_gradient() of those examples alone.
  void mean_loss_gradients(const float* theta, int64_t groups, float* grads);
  // The mean of those groups' gradients, mean [d + 1]: bit for bit mean_loss_gradients(), then
  // sum_in_rank_order() of the groups (comm.hpp), then a division by groups, as the in-process
  // workers' step takes it (CpuEngine), without a row of memory per group.
  void mean_of_group_gradients(const float* theta, int64_t groups, float* mean);

 private:
  // residuals_[i] = sigma(z_i) - y_i for the gathered examples.
  void compute_residuals(const float* theta);
  // Asks for the fetch_ahead() rows up to `end` (at most all of them) not asked for yet.
  void fetch_ahead_until(int64_t end);
  // mean_loss_gradients() into grads (mean null), or mean_of_group_gradients() into mean.
  void group_gradients(const float* theta, int64_t groups, float* grads, float* mean);

  int64_t d_, count_ = 0, blocks_ = 0;
  std::vector<float> zeros_;                   // the row of the lanes past the last example
  std::vector<const float*> sources_;          // where each example's row is, [blocks * kLanes]
  std::vector<const float*> ahead_;            // fetch_ahead()'s rows: [ahead_count_], the first
  int64_t ahead_count_ = 0, ahead_asked_ = 0;  // ahead_asked_ of them asked for
  std::vector<float> labels_, residuals_;
  std::vector<float> scaled_;      // residuals_ / examples a group: the gradients' row weights
  std::vector<float> group_rows_;  // mean_of_group_gradients' rows, where it writes them out
};

}  // namespace khsgd
