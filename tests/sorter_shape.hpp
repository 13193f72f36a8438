// sorters.hpp's sorter_shape() with the tests' defaults: three epochs, rank 0.
#pragma once

#include <cstdint>

#include "khsgd/sorting/sorters.hpp"

namespace khsgd_test {

// n = ranks of m examples each, mb a step, D numbers a gradient, E = epochs (SBW's and KH-SGD's
// tables); sort() answers for `rank`.
inline khsgd::SorterShape shape_of(int64_t ranks, int64_t m, int64_t mb, int64_t D,
                                   int64_t epochs = 3, int64_t rank = 0) {
  return khsgd::sorter_shape(ranks, m, mb, D, epochs, rank);
}

}  // namespace khsgd_test
