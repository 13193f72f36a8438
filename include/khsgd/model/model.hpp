// Logistic regression (ALGORITHM.md §2) on plain float arrays: the CPU twin of the CUDA kernels.
//
// The parameter vector is theta = [w; b], D = d + 1: the flattened parameters of
// torch::nn::Linear(d, 1), weight first. The step loop runs 12 204 dependent steps of 16
// examples per epoch, so these are straight loops over contiguous rows, not tensor ops: a LibTorch
// op costs microseconds of dispatch, longer than the arithmetic of a whole step.
//
// Rounding follows the reference (ALGORITHM.md §7: float32, one rounding per PyTorch op) so the
// same seed reproduces its numbers; the per-example arithmetic is in logistic.hpp, shared with the
// CUDA kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "khsgd/engine/epoch_report.hpp"
#include "khsgd/model/feature_blocks.hpp"
#include "khsgd/model/logistic.hpp"

namespace khsgd {

// Per-example gradients of binary cross-entropy with logits, g_i = (sigma(z_i) - y_i) [x_i; 1],
// for the examples rows[0..count): G is [count, d + 1].
void per_example_gradients(const float* X, const float* y, const int64_t* rows, int64_t count,
                           int64_t d, const float* theta, float* G);

// The gradient of the mean loss over rows[0..count), as autograd of
// F.binary_cross_entropy_with_logits(mean) gives it: sum_i ((sigma(z_i) - y_i) / count) [x_i; 1].
void mean_loss_gradient(const float* X, const float* y, const int64_t* rows, int64_t count,
                        int64_t d, const float* theta, float* grad);

// Mean binary cross-entropy of the examples rows[0..count) (the progress display's running loss).
double microbatch_loss(const float* X, const float* y, const int64_t* rows, int64_t count,
                       int64_t d, const float* theta);

// Column means of G [rows, D]: gathered.mean(dim=(0, 1)) with rows summed in order.
void mean_of_rows(const float* G, int64_t rows, int64_t D, float* mean);

// SGD with momentum as torchopt.sgd(lr, momentum) applies it: v <- mu v + g; theta <- theta + (-lr
// v), each op rounded to float32 on its own (no fused multiply-add).
class MomentumSGD {
 public:
  MomentumSGD(int64_t D, double lr, double momentum);
  void step(float* theta, const float* grad);
  std::vector<float>& velocity() { return velocity_; }
  const std::vector<float>& velocity() const { return velocity_; }

 private:
  float neg_lr_;
  float momentum_;
  std::vector<float> velocity_;
};

// Loss and accuracy of theta over the rows of X, y: the mean binary cross-entropy (each row's loss
// in double, added in row order) and the share of rows whose logit is > 0 exactly when y = 1.
// threads > 1: that many threads take a share of the rows each (the same bits).
Evaluation evaluate(const FeatureBlocks& X, const float* y, const float* theta, int threads = 1);

// The same over rows [0, rows) of X [rows, d] row-major (a one-off call: it makes the blocks).
Evaluation evaluate(const float* X, const float* y, int64_t rows, int64_t d, const float* theta);

}  // namespace khsgd
