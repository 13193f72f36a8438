// The shape every part of a run shares: n ranks with m examples each, `microbatch` examples per
// rank and step, gradients of D numbers. The data's partition (Partition, data.hpp), the sorters'
// shape (SorterShape, sorters.hpp), the pair walk's layout (PairLayout, pair_walk.hpp) and the
// CUDA engine's epoch (EpochArgs) embed it rather than copy its fields one by one.
#pragma once

#include <cstdint>

#include "khsgd/base/host_device.hpp"

namespace khsgd {

// D of a model on d features: the d weights and the bias. The one place D is made from d.
KHSGD_HOST_DEVICE constexpr int64_t gradient_length(int64_t features) { return features + 1; }

struct Geometry {
  int64_t ranks = 1;        // n
  int64_t shard_rows = 0;   // m, examples per rank
  int64_t microbatch = 16;  // examples per rank and step
  int64_t D = 21;           // gradient length: d features and the bias (gradient_length)

  // d, the features of an example (a row of X).
  KHSGD_HOST_DEVICE int64_t features() const { return D - 1; }
  // The geometry alone of a struct that embeds it (a Partition, a SorterShape).
  Geometry& geometry() { return *this; }
  const Geometry& geometry() const { return *this; }
};

}  // namespace khsgd
