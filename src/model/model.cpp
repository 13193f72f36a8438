#include "khsgd/model/model.hpp"

#include <algorithm>

#include "khsgd/engine/microbatch.hpp"
#include "khsgd/engine/step_math.hpp"

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
  auto score = [&](float z, float label) {
    loss += bce_with_logits(z, label);
    correct += ((z > 0.0f) == (label == 1.0f)) ? 1 : 0;
  };
  // Rows in blocks of kLanes, as the step loop's Microbatch: each row's dot product is logit()'s,
  // summed in double in j order, only kLanes independent rows advance side by side (vector lanes
  // instead of one dependent chain of adds after another). The loss is then added row by row in
  // order, as before.
  constexpr int64_t kLanes = Microbatch::kLanes;
  int64_t r = 0;
  for (; r + kLanes <= rows; r += kLanes) {
    const float* x[kLanes];
    for (int64_t i = 0; i < kLanes; ++i) x[i] = X + (r + i) * d;
    double dots[kLanes];
    Microbatch::block_dots(x, theta, d, dots);
    for (int64_t i = 0; i < kLanes; ++i) score(logit_from_dot(dots[i], theta[d]), y[r + i]);
  }
  for (; r < rows; ++r) score(logit(X + r * d, theta, d), y[r]);
  out.rows = rows;
  out.correct = correct;
  out.loss = rows ? loss / rows : 0.0;
  out.accuracy = rows ? static_cast<double>(correct) / rows : 0.0;
  return out;
}

}  // namespace khsgd
