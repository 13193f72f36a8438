// The CUDA twins of model.cpp and sorters.cpp: kernel launchers and their arguments.
//
// No LibTorch here, so nvcc on a machine without a CUDA LibTorch can still compile-check them.
// The arithmetic is shared with the CPU code (logistic.hpp, step_math.hpp, pair_rules.hpp,
// pair_walk.hpp), so the CUDA engine reproduces the CPU engine's numbers up to the few sums whose
// order differs (dot products accumulated in double across a warp, then rounded once to float).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "khsgd/sorting/pair_walk.hpp"

namespace khsgd::cuda {

// One rank's SGD over an epoch (ALGORITHM.md §3), parameters and data in device memory.
struct EpochArgs {
  const float* X = nullptr;        // this rank's shard [m, d]
  const float* y = nullptr;        // [m]
  const int64_t* order = nullptr;  // [m], this epoch's order of the shard
  Geometry geometry;  // microbatch, D = d + 1 (its ranks and shard_rows: the whole run's)
  int64_t steps = 0;
  float* theta = nullptr;     // [d + 1], updated in place
  float* velocity = nullptr;  // [d + 1], momentum buffer, updated in place
  float neg_lr = 0.0f;        // float(-lr), as torchopt scales
  float momentum = 0.0f;
  // Pair sorters: every step's per-example gradients [steps, microbatch, d + 1] are written here
  // for the sorter's pass. nullptr for D-RR (mean gradient only).
  float* gradients = nullptr;
  // D-RR under --save_grads: its per-example gradients [steps, microbatch, d + 1] are written
  // here as well (the update still uses the mean-loss rows).
  float* captured = nullptr;
};

// Threads that compute a step (one warp per example of the step); the block keeps theta, the
// momentum and one step's gradient rows in shared memory, which bounds d + 1 and the microbatch.
// A block gets 48 KiB without opting in, static and dynamic together: 64 bytes of it are left
// for the kernels' own __shared__ variables (the epoch kernel's step counter: 16 bytes, ptxas).
inline constexpr int kStepThreads = 512;
inline constexpr int64_t kMaxSharedFloats = 12 * 1024 - 16;
bool fits_fused_kernel(const Geometry& geometry);

// The pair-balancing pass (ALGORITHM.md §4.2) over `steps` steps of gathered gradients, state on
// the device.
struct PairBalanceArgs {
  PairRuleTables tables;  // device pointers
  PairLayout layout;
  const float* gradients = nullptr;  // [steps, ranks, microbatch, D], step first_step first
  int64_t first_step = 0;
  int64_t steps = 0;
  const int64_t* orders = nullptr;  // [ranks, m]
  int64_t* next_orders = nullptr;   // [ranks, m]
  float* sum = nullptr;             // [D], the running signed sum s
  PairCursor* cursor = nullptr;     // [1]
};

// The pass's kernels: one warp walks the decisions (they are sequential) with lane c holding
// components c, c + 32, ... Registers<K> keep s and the next pair's rows in registers (D <= 32 K);
// SharedMemory keeps s in shared memory (any D). Auto takes registers up to D = 128.
enum class PairKernel { Auto, Registers1, Registers4, SharedMemory };
void launch_pair_balance(const PairBalanceArgs& args, cudaStream_t stream,
                         PairKernel kernel = PairKernel::Auto);

// Whether the pass over D-long gradients can run beside the steps inside the epoch kernel
// (one more warp, s in registers).
bool fits_pass_beside_steps(int64_t D);

// One rank: all the epoch's steps in one persistent single-block kernel (steps are dependent, so
// one block; per-step launches would cost more than a step's arithmetic). With `pass` (pair
// sorters, fits_pass_beside_steps), one more warp makes the sorter's decisions as each step's
// gradients come out, instead of a second pass over the epoch after it: the same decisions.
void launch_fused_epoch(const EpochArgs& args, const PairBalanceArgs* pass, cudaStream_t stream);

// Several ranks, step k around the host's collective. First this rank's gradients: per-example
// rows [microbatch, d + 1] (pair sorters) or the mean-loss gradient [d + 1] (D-RR) into `out`.
void launch_step_gradients(const EpochArgs& args, int64_t k, bool per_example, float* out,
                           cudaStream_t stream);
// D-RR under --save_grads, several ranks or --profile: step k's per-example rows into `out`.
void launch_step_rows(const EpochArgs& args, int64_t k, float* out, cudaStream_t stream);
// Then the update from the collective's result: pair sorters pass the gathered rows
// [rows, d + 1] and get their mean; D-RR passes the all-reduced sum (rows = 1) divided by `ranks`.
void launch_step_update(const EpochArgs& args, const float* combined, int64_t rows, bool mean_rows,
                        float ranks, cudaStream_t stream);

// Sum of BCE losses (double) and number of correct predictions over rows [0, rows).
struct EvalTotals {
  double loss;
  unsigned long long correct;
};
void launch_evaluate(const float* X, const float* y, int64_t rows, int64_t d, const float* theta,
                     EvalTotals* totals, cudaStream_t stream);

// values[i] = values[i] + increment in float32 (KH-SGD's per-epoch log-penalty shift).
void launch_add_scalar(float* values, int64_t count, float increment, cudaStream_t stream);

}  // namespace khsgd::cuda
