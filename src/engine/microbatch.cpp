#include "khsgd/engine/microbatch.hpp"

#include <algorithm>

#include "khsgd/base/geometry.hpp"
#include "khsgd/model/logistic.hpp"

namespace khsgd {

namespace {

int64_t blocks_for(int64_t count) { return (count + Microbatch::kLanes - 1) / Microbatch::kLanes; }

// grad[j] += r_i x_i[j] for the rows i of [first, last) in order, each row scaled by 1 / n: the
// columns are independent, so the compiler takes them in vector lanes (each column's sum still
// adds the rows in order). One call per group rather than per row: the clones are called through
// an indirection.
KHSGD_VECTOR_CLONES void add_scaled_rows(float* __restrict grad, const float* const* sources,
                                         const float* residuals, int64_t first, int64_t last,
                                         float n, int64_t d) {
  for (int64_t i = first; i < last; ++i) {
    const float r = residuals[i] / n;
    const float* __restrict x = sources[i];
    for (int64_t j = 0; j < d; ++j) grad[j] += r * x[j];
    grad[d] += r;
  }
}

// G row i = r_i [x_i; 1] for the rows i of [0, count).
KHSGD_VECTOR_CLONES void scaled_rows(float* __restrict G, const float* const* sources,
                                     const float* residuals, int64_t count, int64_t d) {
  const int64_t D = gradient_length(d);
  for (int64_t i = 0; i < count; ++i) {
    const float r = residuals[i];
    const float* __restrict x = sources[i];
    float* __restrict g = G + i * D;
    for (int64_t j = 0; j < d; ++j) g[j] = r * x[j];
    g[d] = r;
  }
}

}  // namespace

KHSGD_VECTOR_CLONES void Microbatch::block_dots(const float* const* rows, const float* theta,
                                                int64_t d, double* dots) {
  // logit(): dot += double(x[j]) * theta[j] for j = 0, 1, ...: the same sums, kLanes examples at
  // once, the accumulators in registers.
  for (int64_t i = 0; i < kLanes; ++i) dots[i] = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    const double w = theta[j];
    for (int64_t i = 0; i < kLanes; ++i) dots[i] += static_cast<double>(rows[i][j]) * w;
  }
}

Microbatch::Microbatch(int64_t capacity, int64_t d)
    : d_(d),
      zeros_(d, 0.0f),
      sources_(blocks_for(capacity) * kLanes, zeros_.data()),
      labels_(blocks_for(capacity) * kLanes, 0.0f),
      residuals_(blocks_for(capacity) * kLanes) {}

void Microbatch::gather(const float* X, const float* y, const int64_t* rows, int64_t count) {
  count_ = count;
  blocks_ = blocks_for(count);
  for (int64_t i = 0; i < count; ++i) {
    sources_[i] = X + rows[i] * d_;
    labels_[i] = y[rows[i]];
  }
  // Lanes past the last example compute on zeros (finite, never read back).
  for (int64_t i = count; i < blocks_ * kLanes; ++i) sources_[i] = zeros_.data();
}

void Microbatch::prefetch(const float* X, const float* y, const int64_t* rows, int64_t count,
                          int64_t d) {
  for (int64_t i = 0; i < count; ++i) {
    const float* x = X + rows[i] * d;
    __builtin_prefetch(x);
    __builtin_prefetch(x + d - 1);  // a row may straddle two cache lines
    __builtin_prefetch(y + rows[i]);
  }
}

void Microbatch::compute_residuals(const float* theta) {
  for (int64_t b = 0; b < blocks_; ++b) {
    double dots[kLanes];
    block_dots(sources_.data() + b * kLanes, theta, d_, dots);
    const int64_t first = b * kLanes, last = std::min(count_, first + kLanes);
    for (int64_t i = first; i < last; ++i)
      residuals_[i] = residual(logit_from_dot(dots[i - first], theta[d_]), labels_[i]);
  }
}

void Microbatch::per_example_gradients(const float* theta, float* G) {
  compute_residuals(theta);
  scaled_rows(G, sources_.data(), residuals_.data(), count_, d_);
}

void Microbatch::mean_loss_gradients(const float* theta, int64_t groups, float* grads) {
  // Autograd scales each residual by 1 / count (binary_cross_entropy_with_logits_backward with
  // mean reduction) and then sums the scaled rows (the matmul of linear's backward).
  compute_residuals(theta);
  const int64_t D = gradient_length(d_), count = count_ / groups;
  const float n = static_cast<float>(count);
  for (int64_t g = 0; g < groups; ++g) {
    float* grad = grads + g * D;
    std::fill(grad, grad + D, 0.0f);
    add_scaled_rows(grad, sources_.data(), residuals_.data(), g * count, (g + 1) * count, n, d_);
  }
}

}  // namespace khsgd
