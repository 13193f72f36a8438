// The data: loading the HMDA tensors, the synthetic stand-in, and the preparation of ALGORITHM.md
// §1 (truncation to an even number of full batches, one contiguous shard per rank).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "khsgd/base/geometry.hpp"
#include "khsgd/base/huge_pages.hpp"

namespace khsgd {

struct Dataset {
  int64_t d = 0;  // features per example
  int64_t n_train = 0;
  int64_t n_test = 0;
  // [n_train, d] row-major, on huge pages: the step loop reads its rows in a random order
  // (huge_pages.hpp)
  HugePageVector<float> train_x;
  std::vector<float> train_y;  // [n_train] in {0, 1}
  std::vector<float> test_x;   // [n_test, d]
  std::vector<float> test_y;   // [n_test]
  std::string source;          // where it came from, for config.json
};

inline constexpr const char* kFeaturesFile = "features-processed-NY-2017.pt";
inline constexpr const char* kTargetsFile = "targets-processed-NY-2017.pt";

// Loads data_dir/features-processed-NY-2017.pt and data_dir/targets-processed-NY-2017.pt.
// Throws UserError with one line naming the file and what was expected.
Dataset load_hmda(const std::string& data_dir);

// A hash of the shapes and every value: ranks compare it before they start, checkpoints carry it.
uint64_t data_fingerprint(const Dataset& data);

// Size of the real NY-2017 split; the synthetic set has the same shape.
inline constexpr int64_t kHmdaTrainRows = 195285;
inline constexpr int64_t kHmdaTestRows = 48822;

// A deterministic HMDA-shaped set (see README "Synthetic data"): 10 Gaussian and 10 binary
// features, labels drawn from a fixed logistic model with about 77 % positives, so that logistic
// regression reaches roughly 83 % test accuracy. The same arguments give the same bytes, on any
// number of threads (0: one a core this process may use, at most 8).
Dataset make_synthetic(int64_t n_train = kHmdaTrainRows, int64_t n_test = kHmdaTestRows,
                       int threads = 0);

// About how many bytes a one-rank run holds for a synthetic set of `train_rows` rows (and a
// quarter as many test rows): the set, the engine's copy, the evaluation's feature blocks (rank
// 0's) and its kept terms, the orders. Measured: peak RSS grows ~230 bytes a row (2M rows 451
// MiB, 4M rows 895 MiB); 280 leaves a margin. Used to refuse a --synthetic_rows that cannot fit
// before anything is made.
inline int64_t synthetic_set_bytes(int64_t train_rows) { return train_rows * 280; }

// ALGORITHM.md §1 "Preparation".
// The geometry: n ranks, m = N' / n examples each (rank r owns rows [r m, (r + 1) m)), B / n
// examples per rank and step, D = d + 1; and the rest of the plan.
struct Partition : Geometry {
  int64_t batch = 16;       // B, global
  int64_t num_batches = 0;  // steps per epoch: the largest even number <= N / B
  int64_t used_rows = 0;    // N' = num_batches * B; train rows [0, N') are used
};

// N = train_rows examples of d = `features` each. Throws UserError when the data holds too few
// rows for two batches.
Partition plan_partition(int64_t train_rows, int64_t features, int64_t batch, int64_t ranks);

}  // namespace khsgd
