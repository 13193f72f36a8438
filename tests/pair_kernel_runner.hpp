// Runs one of the pair-balance kernels on host data (the GPU kernel checks of test_gpu.cpp): copies
// the inputs to the device, launches, copies the state back. Built from pair_kernel_runner.cu in
// CUDA builds; nvcc compile-checks it with KHSGD_CHECK_CUDA elsewhere.
#pragma once

#include <cstdint>
#include <vector>

#include "khsgd/sorting/pair_walk.hpp"

namespace khsgd_test {

enum class PairKernelChoice { Registers1, Registers4, SharedMemory };

// A pass's inputs and state on the host; tables a rule does not read may stay empty.
struct PairPassData {
  khsgd::PairRule rule = khsgd::PairRule::CDGraB;
  khsgd::PairLayout layout;
  std::vector<float> gradients;              // [steps, ranks, microbatch, D] of the steps walked
  std::vector<int64_t> orders, next_orders;  // [ranks, m]
  std::vector<float> sum;                    // [D]
  std::vector<float> thresholds, log_penalty, uniforms;
  khsgd::PairCursor cursor;
};

// next_orders, sum and cursor of `data` after the kernel's walk over `steps` steps from step
// `first_step` on.
void run_pair_kernel(PairKernelChoice kernel, int64_t first_step, int64_t steps,
                     PairPassData* data);

}  // namespace khsgd_test
