// DeviceOps for tests that need a sorter built but not its random numbers: the identity
// permutation, one constant for every uniform draw, and ones for the log table.
#pragma once

#include <cstdint>
#include <vector>

#include "khsgd/sorting/device_ops.hpp"

namespace khsgd_test {

class PlainDraws final : public khsgd::DeviceOps {
 public:
  explicit PlainDraws(float uniform_value = 0.0f) : uniform_value_(uniform_value) {}
  std::vector<int64_t> randperm(int64_t m) override {
    std::vector<int64_t> identity(m);
    for (int64_t i = 0; i < m; ++i) identity[i] = i;
    return identity;
  }
  std::vector<float> uniform(int64_t count, double, double) override {
    return std::vector<float>(count, uniform_value_);
  }
  std::vector<float> log_of_multiples(double, int64_t count) override {
    return std::vector<float>(count, 1.0f);
  }

 private:
  float uniform_value_;
};

}  // namespace khsgd_test
