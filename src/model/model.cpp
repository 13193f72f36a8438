#include "khsgd/model/model.hpp"

#include <algorithm>

#include "khsgd/engine/microbatch.hpp"
#include "khsgd/engine/step_math.hpp"
#include "khsgd/model/libm_lanes.hpp"

namespace khsgd {

// One-off calls: the step loop keeps its Microbatch, which does the arithmetic for both.
void per_example_gradients(const float* X, const float* y, const int64_t* rows, int64_t count,
                           int64_t d, const float* theta, float* G) {
  Microbatch batch(count, d);
  batch.gather(X, y, rows, count);
  batch.per_example_gradients(theta, G);
}

void mean_loss_gradient(const float* X, const float* y, const int64_t* rows, int64_t count,
                        int64_t d, const float* theta, float* grad) {
  Microbatch batch(count, d);
  batch.gather(X, y, rows, count);
  batch.mean_loss_gradient(theta, grad);
}

double microbatch_loss(const float* X, const float* y, const int64_t* rows, int64_t count,
                       int64_t d, const float* theta) {
  double loss = 0.0;
  for (int64_t i = 0; i < count; ++i)
    loss += bce_with_logits(logit(X + rows[i] * d, theta, d), y[rows[i]]);
  return count ? loss / count : 0.0;
}

// column_mean() of every column at once: row after row, so that the columns advance side by side
// (each still adds its rows in order from the first, then divides once).
KHSGD_VECTOR_CLONES void mean_of_rows(const float* G, int64_t rows, int64_t D, float* mean) {
  for (int64_t j = 0; j < D; ++j) mean[j] = G[j];
  for (int64_t i = 1; i < rows; ++i) {
    const float* row = G + i * D;
    for (int64_t j = 0; j < D; ++j) mean[j] += row[j];
  }
  const float count = static_cast<float>(rows);
  for (int64_t j = 0; j < D; ++j) mean[j] /= count;
}

MomentumSGD::MomentumSGD(int64_t D, double lr, double momentum)
    : neg_lr_(static_cast<float>(-lr)),
      momentum_(static_cast<float>(momentum)),
      velocity_(D, 0.0f) {}

// Parameter by parameter, each on its own: the compiler may take them in vector lanes.
void MomentumSGD::step(float* theta, const float* grad) {
  const int64_t D = static_cast<int64_t>(velocity_.size());
  const float momentum = momentum_, neg_lr = neg_lr_;
  float* __restrict velocity = velocity_.data();
  float* __restrict params = theta;
  const float* __restrict g = grad;
  for (int64_t j = 0; j < D; ++j) momentum_update(g[j], momentum, neg_lr, &velocity[j], &params[j]);
}

Evaluation evaluate(const float* X, const float* y, int64_t rows, int64_t d, const float* theta) {
  Evaluation out;
  double loss = 0.0;
  int64_t correct = 0;
  // Rows in chunks: first every logit of the chunk, in blocks of kLanes rows as the step loop's
  // Microbatch (each row's dot product is logit()'s, summed in double in j order; only kLanes
  // independent rows advance side by side in vector lanes), then the chunk's log1p(exp(-|z|)) in
  // lanes (libm_lanes.hpp, libm's bits), then the loss added row by row in order, as before.
  constexpr int64_t kLanes = Microbatch::kLanes, kChunk = 32 * kLanes;
  float z[kChunk];
  double softplus[kChunk];
  for (int64_t first = 0; first < rows; first += kChunk) {
    const int64_t count = std::min(kChunk, rows - first);
    int64_t i = 0;
    for (; i + kLanes <= count; i += kLanes) {
      const float* x[kLanes];
      for (int64_t l = 0; l < kLanes; ++l) x[l] = X + (first + i + l) * d;
      double dots[kLanes];
      Microbatch::block_dots(x, theta, d, dots);
      for (int64_t l = 0; l < kLanes; ++l) z[i + l] = logit_from_dot(dots[l], theta[d]);
    }
    for (; i < count; ++i) z[i] = logit(X + (first + i) * d, theta, d);
    softplus_of_minus_abs(z, count, softplus);
    for (i = 0; i < count; ++i) {
      const float label = y[first + i];
      loss += bce_with_logits(softplus[i], z[i], label);
      correct += ((z[i] > 0.0f) == (label == 1.0f)) ? 1 : 0;
    }
  }
  out.rows = rows;
  out.correct = correct;
  out.loss = rows ? loss / rows : 0.0;
  out.accuracy = rows ? static_cast<double>(correct) / rows : 0.0;
  return out;
}

}  // namespace khsgd
