// The CUDA twins of model.cpp and sorters.cpp: kernel launchers and their arguments.
//
// No LibTorch here, so nvcc on a machine without a CUDA LibTorch can still compile-check them.
// Every kernel rounds like its CPU twin (logistic.hpp, pair_rules.hpp are shared), so the CUDA
// engine reproduces the CPU engine's numbers up to the few operations whose order differs
// (sums accumulated in double, then rounded once to float).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace khsgd::cuda {

// One rank's SGD over an epoch (ALGORITHM.md §3), parameters and data in device memory.
struct EpochArgs {
  const float* X = nullptr;        // this rank's shard [m, d]
  const float* y = nullptr;        // [m]
  const int64_t* order = nullptr;  // [m], this epoch's order of the shard
  int64_t d = 0;
  int64_t microbatch = 0;
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

// Largest d + 1 and microbatch the kernels take: the block keeps theta and one step's gradient
// rows in shared memory.
inline constexpr int kBlockThreads = 512;
inline constexpr int64_t kMaxSharedFloats = 12 * 1024;  // 48 KiB
bool fits_fused_kernel(int64_t d, int64_t microbatch);

// One rank: all the epoch's steps in one persistent single-block kernel (steps are dependent, so
// one block; per-step launches would cost more than a step's arithmetic).
void launch_fused_epoch(const EpochArgs& args, cudaStream_t stream);

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

// The pair-balancing pass (ALGORITHM.md §4.2) over `steps` steps of gathered gradients.
enum class PairRule : int { CDGraB = 0, SBW = 1, KHSGD = 2 };

struct PairState {
  double tau;        // KH-SGD's "two sigma squared"
  int64_t decision;  // KH-SGD: index into this epoch's tables; SBW: across the whole run
  int64_t left;
  int64_t right;
};

struct PairBalanceArgs {
  PairRule rule = PairRule::CDGraB;
  const float* gradients = nullptr;  // [steps, ranks, microbatch, D], step first_step first
  int64_t first_step = 0;
  int64_t steps = 0;
  int64_t ranks = 1;
  int64_t shard_rows = 0;  // m
  int64_t microbatch = 0;
  int64_t D = 0;
  const int64_t* orders = nullptr;  // [ranks, m]
  int64_t* next_orders = nullptr;   // [ranks, m]
  float* sum = nullptr;             // [D], running signed sum
  PairState* state = nullptr;
  const float* log_penalty = nullptr;  // KH-SGD [T]
  const float* uniforms = nullptr;     // KH-SGD [T]
  const float* thresholds = nullptr;   // SBW [m n E / 2]
};
void launch_pair_balance(const PairBalanceArgs& args, cudaStream_t stream);

// values[i] = values[i] + increment in float32 (KH-SGD's per-epoch log-penalty shift).
void launch_add_scalar(float* values, int64_t count, float increment, cudaStream_t stream);

}  // namespace khsgd::cuda
