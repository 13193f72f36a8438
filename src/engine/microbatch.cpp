#include "khsgd/engine/microbatch.hpp"

#include <algorithm>
#include <cstdint>

// The transposed AVX2 dot products (block_dots_avx2) where KHSGD_X86_INTRINSICS
// (vector_clones.hpp).
#if KHSGD_X86_INTRINSICS
#include <immintrin.h>
#endif

#include "khsgd/base/geometry.hpp"
#include "khsgd/comm/comm.hpp"
#include "khsgd/model/libm_lanes.hpp"
#include "khsgd/model/logistic.hpp"

namespace khsgd {

namespace {

#if KHSGD_X86_INTRINSICS
const bool kCpuHasAvx2 = cpu_vector_sets().avx2;
#endif

int64_t blocks_for(int64_t count) { return (count + Microbatch::kLanes - 1) / Microbatch::kLanes; }

// Group g's gradient, sum over its rows i of scaled_i [x_i; 1], for `groups` groups of `each`
// consecutive rows: each column's products added in row order from zero. The columns are
// independent, so the compiler takes them in vector lanes. Written to grads + g (d + 1).
KHSGD_VECTOR_CLONES void group_gradients_portable(const float* const* sources, const float* scaled,
                                                  int64_t groups, int64_t each, int64_t d,
                                                  float* __restrict grads) {
  for (int64_t g = 0; g < groups; ++g) {
    float* __restrict grad = grads + g * (d + 1);
    for (int64_t j = 0; j <= d; ++j) grad[j] = 0.0f;
    for (int64_t i = g * each; i < (g + 1) * each; ++i) {
      const float r = scaled[i];
      const float* __restrict x = sources[i];
      for (int64_t j = 0; j < d; ++j) grad[j] += r * x[j];
      grad[d] += r;
    }
  }
}

#if KHSGD_X86_INTRINSICS
// The same sums eight columns a register, written out: the compiler's clone above re-reads and
// re-stores grad for every row and handles the 21st column and the remainder one float at a time
// (callgrind: ~770 instructions a step of 16 rows; here ~490). Columns in groups of eight, the
// rows in order within each group: every column's sum is the loop's, product by product (for
// numbers; which NaN an add of two NaNs keeps depends on the order of its operands, which the
// compiler chooses for the loop too). The last group of columns holds the remaining features and
// the bias column, whose "feature" is 1 (r * 1 = r): its loads read only the row's own floats.
//
// With `mean`, the groups' gradients are not written but added in group order and divided by
// groups into mean [d + 1]: sum_in_rank_order() of the rows above and the division, add by add,
// with each group's sums in registers instead of a row of memory (64 in-process workers of two
// examples spent ~150 instructions a worker writing their rows and ~55 more summing them).
//
// The last columns are read as the row's last eight floats, moved down to their lanes: a load
// that ends where the row ends. A masked load from the first of them reaches 32 - 4 (d - c) bytes
// past the row's end (16 for d = 20) with its masked-off lanes, and where the row ends that close
// to a cache line's end (80-byte rows: those that end on a line boundary, one in four) it fetched
// the next line, which in a random order is a miss of its own: perf put ~1.5 ms of a shuffled
// epoch's 7 ms on that load (AMD EPYC guest), none in the stored order, where the next line is
// the next row. Rows of fewer than eight features, where the eight floats would start before the
// row, keep the masked load.
struct LastColumns {
  __m256i features, with_bias;  // lanes < d - c; lanes <= d - c
  __m256 bias;                  // 1 in lane d - c
  bool from_row_end = false;    // d >= 8: load row + c + back, then permute by down
  int64_t back = 0;             // (d - c) - 8: from column c back to the row's last eight floats
  __m256i down;                 // lane l takes float l + 8 - (d - c) of those eight (mod 8)
};

template <bool kLast>
__attribute__((target("avx2"), always_inline)) inline __m256 columns_of(const float* row,
                                                                        const LastColumns& last) {
  if (!kLast) return _mm256_loadu_ps(row);
  if (last.from_row_end) {
    const __m256 tail = _mm256_permutevar8x32_ps(_mm256_loadu_ps(row + last.back), last.down);
    return _mm256_or_ps(_mm256_and_ps(tail, _mm256_castsi256_ps(last.features)), last.bias);
  }
  return _mm256_or_ps(_mm256_maskload_ps(row, last.features), last.bias);
}

template <bool kLast>
__attribute__((target("avx2"), always_inline)) inline void store_columns(float* out, __m256 v,
                                                                         const LastColumns& last) {
  if (kLast) {
    _mm256_maskstore_ps(out, last.with_bias, v);
  } else {
    _mm256_storeu_ps(out, v);
  }
}

// Columns c .. c + 7 (kLast: c .. d) of every group's gradient, or of their mean.
template <bool kLast>
__attribute__((target("avx2"), always_inline)) inline void group_columns(
    const float* const* sources, const float* scaled, int64_t groups, int64_t each, int64_t D,
    int64_t c, const LastColumns& last, float* grads, float* mean) {
  __m256 total = _mm256_setzero_ps();
  for (int64_t g = 0; g < groups; ++g) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = g * each; i < (g + 1) * each; ++i)
      acc = _mm256_add_ps(
          acc, _mm256_mul_ps(_mm256_set1_ps(scaled[i]), columns_of<kLast>(sources[i] + c, last)));
    if (mean == nullptr) {
      store_columns<kLast>(grads + g * D + c, acc, last);
    } else {
      total = g == 0 ? acc : _mm256_add_ps(total, acc);
    }
  }
  if (mean != nullptr)
    store_columns<kLast>(mean + c, _mm256_div_ps(total, _mm256_set1_ps(static_cast<float>(groups))),
                         last);
}

// First scaled_i = residuals_i / each, eight at a time: residuals and scaled hold whole blocks of
// eight (Microbatch::kLanes), the lanes past the last example never read back.
__attribute__((target("avx2"))) void group_gradients_avx2(const float* const* sources,
                                                          const float* residuals, float* scaled,
                                                          int64_t groups, int64_t each, int64_t d,
                                                          float* grads, float* mean) {
  static_assert(Microbatch::kLanes == 8, "residuals in blocks of eight");
  const __m256 n = _mm256_set1_ps(static_cast<float>(each));
  for (int64_t i = 0; i < groups * each; i += 8)
    _mm256_storeu_ps(scaled + i, _mm256_div_ps(_mm256_loadu_ps(residuals + i), n));
  const int64_t D = d + 1;
  int64_t c = 0;
  LastColumns last{};
  for (; c + 8 <= d; c += 8)
    group_columns<false>(sources, scaled, groups, each, D, c, last, grads, mean);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i left = _mm256_set1_epi32(static_cast<int>(d - c));
  last.features = _mm256_cmpgt_epi32(left, lane);
  last.with_bias = _mm256_cmpgt_epi32(_mm256_add_epi32(left, _mm256_set1_epi32(1)), lane);
  last.bias =
      _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(left, lane)), _mm256_set1_ps(1.0f));
  last.from_row_end = d >= 8;
  last.back = (d - c) - 8;
  last.down = _mm256_sub_epi32(_mm256_add_epi32(lane, _mm256_set1_epi32(8)), left);
  group_columns<true>(sources, scaled, groups, each, D, c, last, grads, mean);
}

#endif

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
      ahead_(static_cast<size_t>(capacity)),
      labels_(blocks_for(capacity) * kLanes, 0.0f),
      residuals_(blocks_for(capacity) * kLanes),
      scaled_(blocks_for(capacity) * kLanes) {}

void Microbatch::gather(const float* X, const float* y, const int64_t* rows, int64_t count) {
  count_ = count;
  blocks_ = blocks_for(count);
  ahead_count_ = 0;
  for (int64_t i = 0; i < count; ++i) {
    sources_[i] = X + rows[i] * d_;
    labels_[i] = y[rows[i]];
  }
  // Lanes past the last example compute on zeros (finite, never read back).
  for (int64_t i = count; i < blocks_ * kLanes; ++i) sources_[i] = zeros_.data();
}

void Microbatch::fetch_ahead(const float* X, const float* y, const int64_t* rows, int64_t count) {
  ahead_count_ = count;
  ahead_asked_ = 0;
  for (int64_t i = 0; i < count; ++i) {
    ahead_[i] = X + rows[i] * d_;
    __builtin_prefetch(y + rows[i]);
  }
}

void Microbatch::fetch_ahead_until(int64_t end) {
  // Every cache line a row touches, once: its first, then the start of each line after it within
  // the row (a row of 20 floats, 80 bytes, always touches two).
  constexpr int64_t kLine = 64;
  const int64_t bytes = d_ * static_cast<int64_t>(sizeof(float));
  for (; ahead_asked_ < std::min(end, ahead_count_); ++ahead_asked_) {
    const char* row = reinterpret_cast<const char*>(ahead_[ahead_asked_]);
    __builtin_prefetch(row);
    const auto skew = static_cast<int64_t>(reinterpret_cast<uintptr_t>(row) % kLine);
    for (int64_t at = kLine - skew; at < bytes; at += kLine) __builtin_prefetch(row + at);
  }
}

void Microbatch::compute_residuals(const float* theta) {
  // The logits block by block, then every sigmoid at once in lanes (libm_lanes.hpp): residual()
  // of each example, sigmoid(z) - y, with libm's bits.
  for (int64_t b = 0; b < blocks_; ++b) {
    // fetch_ahead()'s rows in blocks_ + 1 shares: one before each block, the last before the
    // gradients.
    fetch_ahead_until(ahead_count_ * (b + 1) / (blocks_ + 1));
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
  fetch_ahead_until(ahead_count_);
  scaled_rows(G, sources_.data(), residuals_.data(), count_, d_);
}

void Microbatch::mean_loss_gradients(const float* theta, int64_t groups, float* grads) {
  group_gradients(theta, groups, grads, nullptr);
}

void Microbatch::mean_of_group_gradients(const float* theta, int64_t groups, float* mean) {
  group_gradients(theta, groups, nullptr, mean);
}

void Microbatch::group_gradients(const float* theta, int64_t groups, float* grads, float* mean) {
  // Autograd scales each residual by 1 / count (binary_cross_entropy_with_logits_backward with
  // mean reduction) and then sums the scaled rows (the matmul of linear's backward).
  compute_residuals(theta);
  fetch_ahead_until(ahead_count_);
  const int64_t D = gradient_length(d_), each = count_ / groups;
#if KHSGD_X86_INTRINSICS
  if (kCpuHasAvx2)
    return group_gradients_avx2(sources_.data(), residuals_.data(), scaled_.data(), groups, each,
                                d_, grads, mean);
#endif
  const float n = static_cast<float>(each);
  for (int64_t i = 0; i < count_; ++i) scaled_[i] = residuals_[i] / n;
  if (mean == nullptr)
    return group_gradients_portable(sources_.data(), scaled_.data(), groups, each, d_, grads);
  // The groups' rows, then their sum in rank order and the division.
  group_rows_.resize(static_cast<size_t>(groups * D));
  group_gradients_portable(sources_.data(), scaled_.data(), groups, each, d_, group_rows_.data());
  sum_in_rank_order(group_rows_.data(), static_cast<int>(groups), D, mean);
  for (int64_t j = 0; j < D; ++j) mean[j] /= static_cast<float>(groups);
}

}  // namespace khsgd
