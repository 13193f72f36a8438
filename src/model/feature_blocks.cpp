#include "khsgd/model/feature_blocks.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "khsgd/base/vector_clones.hpp"
#if KHSGD_X86_INTRINSICS
#include <immintrin.h>
#endif
#include "khsgd/model/logistic.hpp"

namespace khsgd {

namespace {

constexpr int64_t kRows = FeatureBlocks::kRows;

// dots[l] = sum_j double(block[j][l]) * w[j], j in order from zero, for the kRows lanes of one
// block: each lane's sum is logit()'s. A product of two floats is exact in double, so a fused
// multiply-add gives the bits of the product rounded and then added.
KHSGD_VECTOR_CLONES void block_dots_portable(const float* __restrict block,
                                             const double* __restrict w, int64_t d,
                                             double* __restrict dots) {
  double acc[kRows] = {};
  for (int64_t j = 0; j < d; ++j) {
    const float* __restrict feature = block + j * kRows;
    for (int64_t l = 0; l < kRows; ++l) acc[l] += static_cast<double>(feature[l]) * w[j];
  }
  for (int64_t l = 0; l < kRows; ++l) dots[l] = acc[l];
}

#if KHSGD_X86_INTRINSICS
// The same with the conversions and fused multiply-adds written out: the compiler's clone of the
// loop above converts each weight in the loop and splits the lanes unevenly, and the conversions
// share one port with every shuffle. Four (AVX2) or two (AVX-512) accumulators of four or eight
// doubles, one weight broadcast from memory per feature.
static_assert(kRows == 16, "four vectors of four doubles, two of eight");

__attribute__((target("avx2,fma"))) void block_dots_avx2(const float* block, const double* w,
                                                         int64_t d, double* dots) {
  __m256d acc[4] = {_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(),
                    _mm256_setzero_pd()};
  for (int64_t j = 0; j < d; ++j) {
    const __m256d weight = _mm256_broadcast_sd(w + j);
    const float* feature = block + j * kRows;
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm_loadu_ps(feature + 4 * k)), weight, acc[k]);
  }
  for (int k = 0; k < 4; ++k) _mm256_storeu_pd(dots + 4 * k, acc[k]);
}

// GCC 12 takes the undefined first operand of its AVX-512 intrinsics (_mm512_undefined_*) for an
// uninitialized variable.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
__attribute__((target("avx512f"))) void block_dots_avx512(const float* block, const double* w,
                                                          int64_t d, double* dots) {
  __m512d low = _mm512_setzero_pd(), high = _mm512_setzero_pd();
  for (int64_t j = 0; j < d; ++j) {
    const __m512d weight = _mm512_set1_pd(w[j]);
    const float* feature = block + j * kRows;
    low = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(feature)), weight, low);
    high = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(feature + 8)), weight, high);
  }
  _mm512_storeu_pd(dots, low);
  _mm512_storeu_pd(dots + 8, high);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

int widest() {
#if KHSGD_X86_INTRINSICS
  const CpuVectorSets& cpu = cpu_vector_sets();
  if (cpu.avx512f) return 8;
  if (cpu.avx2 && cpu.fma) return 4;
#endif
  return 0;
}

const int kWidest = widest();

using BlockDots = void (*)(const float*, const double*, int64_t, double*);

BlockDots block_dots_of_width([[maybe_unused]] int width) {  // unused without intrinsics
#if KHSGD_X86_INTRINSICS
  if (width == 8) return block_dots_avx512;
  if (width == 4) return block_dots_avx2;
#endif
  return block_dots_portable;
}

}  // namespace

FeatureBlocks::FeatureBlocks(const float* X, int64_t rows, int64_t d) : rows_(rows), d_(d) {
  if (rows < 0 || d < 0)
    throw std::invalid_argument("feature blocks of " + std::to_string(rows) + " rows of " +
                                std::to_string(d) + " features");
  const int64_t blocks = (rows + kRows - 1) / kRows;
  // Not zeroed first (the copy is the size of the data set): each block is written whole below.
  blocks_.reset(new float[static_cast<size_t>(blocks * d * kRows)]);
  for (int64_t b = 0; b < blocks; ++b) {
    float* block = blocks_.get() + b * d * kRows;
    const float* first_row = X + b * kRows * d;
    const int64_t here = std::min(kRows, rows - b * kRows);
    for (int64_t j = 0; j < d; ++j) {
      float* feature = block + j * kRows;
      for (int64_t l = 0; l < here; ++l) feature[l] = first_row[l * d + j];
      for (int64_t l = here; l < kRows; ++l) feature[l] = 0.0f;
    }
  }
}

int FeatureBlocks::lane_width() { return kWidest; }

FeatureBlocks::Weights::Weights(const float* theta, int64_t d)
    : w(theta, theta + d), bias(theta[d]) {}

void FeatureBlocks::logits(const float* theta, int64_t first, int64_t count, float* z) const {
  logits(Weights(theta, d_), first, count, z);
}

void FeatureBlocks::logits(const float* theta, int64_t first, int64_t count, float* z,
                           int width) const {
  if (width != 0 && width != 4 && width != 8)
    throw std::invalid_argument("feature blocks are taken 0, 4 or 8 doubles a vector, not " +
                                std::to_string(width));
  if (width > kWidest)
    throw std::invalid_argument("this CPU takes feature blocks at most " + std::to_string(kWidest) +
                                " doubles a vector, not " + std::to_string(width));
  logits(Weights(theta, d_), first, count, z, block_dots_of_width(width));
}

void FeatureBlocks::logits(const Weights& theta, int64_t first, int64_t count, float* z) const {
  logits(theta, first, count, z, block_dots_of_width(kWidest));
}

void FeatureBlocks::logits(const Weights& theta, int64_t first, int64_t count, float* z,
                           BlockDots block_dots) const {
  if (first % kRows != 0 || first < 0 || count < 0 || first + count > rows_)
    throw std::invalid_argument("logits of rows [" + std::to_string(first) + ", " +
                                std::to_string(first + count) + ") of " + std::to_string(rows_) +
                                " in blocks of " + std::to_string(kRows));
  if (static_cast<int64_t>(theta.w.size()) != d_)
    throw std::invalid_argument("logits of rows of " + std::to_string(d_) + " features with " +
                                std::to_string(theta.w.size()) + " weights");
  for (int64_t done = 0; done < count; done += kRows) {
    double dots[kRows];
    block_dots(blocks_.get() + (first + done) / kRows * d_ * kRows, theta.w.data(), d_, dots);
    const int64_t here = std::min(kRows, count - done);
    for (int64_t l = 0; l < here; ++l) z[done + l] = logit_from_dot(dots[l], theta.bias);
  }
}

}  // namespace khsgd
