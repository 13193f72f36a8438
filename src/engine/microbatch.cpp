#include "khsgd/engine/microbatch.hpp"

#include <algorithm>

// The transposed AVX2 dot products (block_dots_avx2) where KHSGD_X86_INTRINSICS
// (vector_clones.hpp).
#if KHSGD_X86_INTRINSICS
#include <immintrin.h>
#endif

#include "khsgd/base/geometry.hpp"
#include "khsgd/model/libm_lanes.hpp"
#include "khsgd/model/logistic.hpp"

namespace khsgd {

namespace {

#if KHSGD_X86_INTRINSICS
const bool kCpuHasAvx2 = __builtin_cpu_supports("avx2");
#endif

int64_t blocks_for(int64_t count) { return (count + Microbatch::kLanes - 1) / Microbatch::kLanes; }

// grad[j] += r_i x_i[j] for the rows i of [first, last) in order, each row scaled by 1 / n: the
// columns are independent, so the compiler takes them in vector lanes (each column's sum still
// adds the rows in order). One call per group rather than per row: the clones are called through
// an indirection.
KHSGD_VECTOR_CLONES void add_scaled_rows_portable(float* __restrict grad,
                                                  const float* const* sources,
                                                  const float* residuals, int64_t first,
                                                  int64_t last, float n, int64_t d) {
  for (int64_t i = first; i < last; ++i) {
    const float r = residuals[i] / n;
    const float* __restrict x = sources[i];
    for (int64_t j = 0; j < d; ++j) grad[j] += r * x[j];
    grad[d] += r;
  }
}

#if KHSGD_X86_INTRINSICS
// The same sums eight columns a register, written out: the compiler's clone above re-reads and
// re-stores grad for every row and handles the 21st column and the remainder one float at a time
// (callgrind: ~770 instructions a step of 16 rows; here ~490). Columns in groups of eight, the
// rows in order within each group: every column's sum is the loop's, product by product (for
// numbers; which NaN an add of two NaNs keeps depends on the order of its operands, which the
// compiler chooses for the loop too). The last group holds the remaining features and the bias
// column, whose "feature" is 1 (r * 1 = r).
__attribute__((target("avx2"))) void add_scaled_rows_avx2(float* grad, const float* const* sources,
                                                          const float* residuals, int64_t first,
                                                          int64_t last, float n, int64_t d) {
  constexpr int64_t kMaxRows = 64;
  float scaled[kMaxRows];
  if (last - first > kMaxRows)
    return add_scaled_rows_portable(grad, sources, residuals, first, last, n, d);
  for (int64_t i = first; i < last; ++i) scaled[i - first] = residuals[i] / n;
  int64_t c = 0;
  for (; c + 8 <= d; c += 8) {
    __m256 acc = _mm256_loadu_ps(grad + c);
    for (int64_t i = first; i < last; ++i)
      acc = _mm256_add_ps(
          acc, _mm256_mul_ps(_mm256_set1_ps(scaled[i - first]), _mm256_loadu_ps(sources[i] + c)));
    _mm256_storeu_ps(grad + c, acc);
  }
  // The last group: features c .. d - 1 (fewer than eight; loads masked to stay in the row), then
  // the bias column at lane d - c.
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i left = _mm256_set1_epi32(static_cast<int>(d - c));
  const __m256i features = _mm256_cmpgt_epi32(left, lane);  // lanes < d - c
  const __m256i with_bias = _mm256_cmpgt_epi32(_mm256_add_epi32(left, _mm256_set1_epi32(1)), lane);
  const __m256 bias =
      _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(left, lane)), _mm256_set1_ps(1.0f));
  __m256 acc = _mm256_maskload_ps(grad + c, with_bias);
  for (int64_t i = first; i < last; ++i) {
    const __m256 x = _mm256_or_ps(_mm256_maskload_ps(sources[i] + c, features), bias);
    acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(scaled[i - first]), x));
  }
  _mm256_maskstore_ps(grad + c, with_bias, acc);
}

#endif

void add_scaled_rows(float* grad, const float* const* sources, const float* residuals,
                     int64_t first, int64_t last, float n, int64_t d) {
#if KHSGD_X86_INTRINSICS
  if (kCpuHasAvx2) return add_scaled_rows_avx2(grad, sources, residuals, first, last, n, d);
#endif
  add_scaled_rows_portable(grad, sources, residuals, first, last, n, d);
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

namespace {

// The portable loop (and the compiler's AVX2 clone of it, which fetches feature j of the eight
// rows one float at a time: 21 instructions per feature).
KHSGD_VECTOR_CLONES void block_dots_by_feature(const float* const* rows, const float* theta,
                                               int64_t d, double* dots) {
  for (int64_t i = 0; i < Microbatch::kLanes; ++i) dots[i] = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    const double w = theta[j];
    for (int64_t i = 0; i < Microbatch::kLanes; ++i) dots[i] += static_cast<double>(rows[i][j]) * w;
  }
}

#if KHSGD_X86_INTRINSICS
// acc[rows] += double(feature of those rows) * theta[j], for rows 0-3 and rows 4-7.
__attribute__((target("avx2"), always_inline)) inline void add_feature(__m256d& low, __m256d& high,
                                                                       float theta_j,
                                                                       __m128 rows_0_3,
                                                                       __m128 rows_4_7) {
  const __m256d w = _mm256_set1_pd(static_cast<double>(theta_j));
  low = _mm256_add_pd(low, _mm256_mul_pd(_mm256_cvtps_pd(rows_0_3), w));
  high = _mm256_add_pd(high, _mm256_mul_pd(_mm256_cvtps_pd(rows_4_7), w));
}

// The same sums with the eight rows read eight (then four) features at a time and transposed in
// registers, ~11 instructions per feature: every product and every add is the loop's above, in
// the same order (no FMA: the target has none and -ffp-contract=off), only the loads differ; each
// load stays inside its row's d floats. callgrind: 25 M -> 19 M instructions per D-RR epoch and
// evaluation of the full synthetic set.
__attribute__((target("avx2"))) void block_dots_avx2(const float* const* rows, const float* theta,
                                                     int64_t d, double* dots) {
  static_assert(Microbatch::kLanes == 8, "two vectors of four doubles");
  __m256d low = _mm256_setzero_pd(), high = _mm256_setzero_pd();  // rows 0-3, rows 4-7
  int64_t j = 0;
  for (; j + 8 <= d; j += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(rows[i] + j);
    // Per 128-bit half: s[k] holds feature j + k of rows 0-3 (low half) and feature j + 4 + k of
    // rows 0-3 (high half); s[4 + k] the same of rows 4-7.
    __m256 s[8];
    for (int g = 0; g < 2; ++g) {
      const __m256 t0 = _mm256_unpacklo_ps(r[4 * g], r[4 * g + 1]);
      const __m256 t1 = _mm256_unpackhi_ps(r[4 * g], r[4 * g + 1]);
      const __m256 t2 = _mm256_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]);
      const __m256 t3 = _mm256_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]);
      s[4 * g + 0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
      s[4 * g + 1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
      s[4 * g + 2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
      s[4 * g + 3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int k = 0; k < 4; ++k)
      add_feature(low, high, theta[j + k], _mm256_castps256_ps128(s[k]),
                  _mm256_castps256_ps128(s[4 + k]));
    for (int k = 0; k < 4; ++k)
      add_feature(low, high, theta[j + 4 + k], _mm256_extractf128_ps(s[k], 1),
                  _mm256_extractf128_ps(s[4 + k], 1));
  }
  for (; j + 4 <= d; j += 4) {
    __m128 a[8];
    for (int i = 0; i < 8; ++i) a[i] = _mm_loadu_ps(rows[i] + j);
    _MM_TRANSPOSE4_PS(a[0], a[1], a[2], a[3]);
    _MM_TRANSPOSE4_PS(a[4], a[5], a[6], a[7]);
    for (int k = 0; k < 4; ++k) add_feature(low, high, theta[j + k], a[k], a[4 + k]);
  }
  for (; j < d; ++j)
    add_feature(low, high, theta[j], _mm_setr_ps(rows[0][j], rows[1][j], rows[2][j], rows[3][j]),
                _mm_setr_ps(rows[4][j], rows[5][j], rows[6][j], rows[7][j]));
  _mm256_storeu_pd(dots, low);
  _mm256_storeu_pd(dots + 4, high);
}
#endif

}  // namespace

void Microbatch::block_dots(const float* const* rows, const float* theta, int64_t d, double* dots) {
#if KHSGD_X86_INTRINSICS
  if (kCpuHasAvx2) return block_dots_avx2(rows, theta, d, dots);
#endif
  block_dots_by_feature(rows, theta, d, dots);
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
  // The logits block by block, then every sigmoid at once in lanes (libm_lanes.hpp): residual()
  // of each example, sigmoid(z) - y, with libm's bits.
  for (int64_t b = 0; b < blocks_; ++b) {
    double dots[kLanes];
    block_dots(sources_.data() + b * kLanes, theta, d_, dots);
    for (int64_t l = 0; l < kLanes; ++l)
      residuals_[b * kLanes + l] = logit_from_dot(dots[l], theta[d_]);
  }
  sigmoids(residuals_.data(), count_, residuals_.data());
  for (int64_t i = 0; i < count_; ++i) residuals_[i] -= labels_[i];
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
