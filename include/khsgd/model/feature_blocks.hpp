// The rows of a data set laid out for the evaluation's dot products: in blocks of kRows rows,
// feature j of the block's rows side by side.
//
// An evaluation takes every row's logit, rows in order. Row-major rows must be transposed in
// registers before the rows can advance side by side in vector lanes (Microbatch::block_dots, the
// step loop's way, for rows at random places): shuffles that bound its speed. Here a load of
// feature j is a load of kRows lanes at once. The copy is made once per run (a few milliseconds,
// the data set's size again in memory); the step loop keeps the row-major rows.
//
// Each row's dot product is logit()'s, bit for bit: products of float by float are exact in
// double, and they are added in j order from zero.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace khsgd {

class FeatureBlocks {
 public:
  static constexpr int64_t kRows = 16;

  // Rows [0, rows) of X [rows, d], row-major. Lanes past the last row hold zeros.
  FeatureBlocks(const float* X, int64_t rows, int64_t d);

  int64_t rows() const { return rows_; }
  int64_t features() const { return d_; }

  // theta [d + 1] as the dot products take it: the d weights in double, then the bias. Made once
  // for a pass over many rows (an evaluation's chunks share one).
  struct Weights {
    Weights(const float* theta, int64_t d);
    std::vector<double> w;
    float bias;
  };

  // z[i] = logit(row first + i, theta) for i < count: first is a multiple of kRows and
  // first + count <= rows().
  void logits(const Weights& theta, int64_t first, int64_t count, float* z) const;
  void logits(const float* theta, int64_t first, int64_t count, float* z) const;

  // How many doubles a vector the dot products take on this CPU: 8 (AVX-512), 4 (AVX2 with FMA)
  // or 0 (the portable loop, which the compiler vectorizes as it can).
  static int lane_width();
  // logits() at a given width, for the tests: 0, 4 or 8, at most lane_width()
  // (std::invalid_argument otherwise).
  void logits(const float* theta, int64_t first, int64_t count, float* z, int width) const;

 private:
  using BlockDots = void (*)(const float*, const double*, int64_t, double*);
  void logits(const Weights& theta, int64_t first, int64_t count, float* z,
              BlockDots block_dots) const;

  int64_t rows_, d_;
  std::unique_ptr<float[]> blocks_;  // [blocks, d, kRows]
};

}  // namespace khsgd
