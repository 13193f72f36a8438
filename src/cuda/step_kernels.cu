// SGD steps and evaluation on the GPU: the CUDA twins of cpu_engine.cpp's loop and model.cpp.
#include <cuda/atomic>

#include "cuda_util.cuh"
#include "kernels.cuh"
#include "khsgd/engine/step_math.hpp"
#include "khsgd/model/logistic.hpp"
#include "pair_rows.cuh"

namespace khsgd::cuda {

namespace {

constexpr int kEvalThreads = 512;  // a power of two: the block's partial sums are halved in turn

// One step's gradient rows for this block: warp w takes examples w, w + warps, ... of the step.
// Pair sorters get g_i = (sigma(z_i) - y_i) [x_i; 1]; D-RR gets rows scaled by 1 / microbatch, as
// autograd of the batch-mean loss does before linear's backward sums them.
__device__ inline void gradient_rows(const EpochArgs& a, int64_t k, const float* theta,
                                     bool per_example, float* rows, float* captured = nullptr) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = kStepThreads / 32;
  const int64_t d = a.geometry.features(), D = a.geometry.D;
  for (int64_t i = warp; i < a.geometry.microbatch; i += warps) {
    const int64_t row = a.order[k * a.geometry.microbatch + i];
    const float* x = a.X + row * d;
    double dot = 0.0;
    for (int64_t j = lane; j < d; j += 32) dot += static_cast<double>(x[j]) * theta[j];
    dot = warp_sum(dot);
    const float full = residual(logit_from_dot(dot, theta[d]), a.y[row]);
    const float r = per_example ? full : full / static_cast<float>(a.geometry.microbatch);
    for (int64_t j = lane; j < d; j += 32) rows[i * D + j] = r * x[j];
    if (lane == 0) rows[i * D + d] = r;
    if (captured != nullptr) {
      for (int64_t j = lane; j < d; j += 32) captured[i * D + j] = full * x[j];
      if (lane == 0) captured[i * D + d] = full;
    }
  }
}

// Column j of rows [count, D] summed in row order from 0: autograd's matmul for D-RR's scaled
// rows (mean_loss_gradient on the CPU). Pair sorters' rows are averaged by step_math.hpp's
// column_mean.
__device__ inline float column_sum(const float* rows, int64_t count, int64_t D, int64_t j) {
  float g = 0.0f;
  for (int64_t i = 0; i < count; ++i) g += rows[i * D + j];
  return g;
}

// The step warps' own barrier (named barrier 1): the fused kernel's sorter warp never joins it.
__device__ inline void step_barrier() {
  asm volatile("bar.sync 1, %0;" ::"r"(kStepThreads) : "memory");
}

// The sorter warp of the fused kernel: the pair pass over the epoch, each step's decisions as soon
// as the step warps have published its gradients.
template <int kPerLane>
__device__ void pass_beside_steps(const PairBalanceArgs& pass, int* produced) {
  StreamedPairRows<kPerLane> rows(pass.gradients, pass.layout, pass.sum, produced);
  PairCursor cursor = *pass.cursor;
  walk_pairs(rows, pass.tables, pass.layout, pass.first_step, pass.steps, pass.orders,
             pass.next_orders, &cursor);
  rows.store_sum(pass.sum);
  if (rows.writes_orders()) *pass.cursor = cursor;
}

// kPerLane > 0: one more warp after the kStepThreads step threads runs the pair pass beside the
// steps (RegisterPairRows<kPerLane>).
template <int kPerLane>
__global__ void __launch_bounds__(kStepThreads + 32, 1)
    fused_epoch_kernel(EpochArgs a, PairBalanceArgs pass) {
  extern __shared__ float shared[];
  __shared__ int produced;  // steps whose gradients are in a.gradients, for the sorter warp
  if (threadIdx.x == 0) produced = 0;
  __syncthreads();  // the last barrier of the whole block: the sorter warp goes its own way
  if (kPerLane > 0 && threadIdx.x >= kStepThreads) {
    pass_beside_steps<kPerLane>(pass, &produced);
    return;
  }
  const int64_t d = a.geometry.features(), D = a.geometry.D, mb = a.geometry.microbatch;
  float* theta = shared;            // [D]
  float* rows = shared + D;         // [mb, D]
  float* velocity = rows + mb * D;  // [D]
  for (int64_t j = threadIdx.x; j < D; j += kStepThreads) {
    theta[j] = a.theta[j];
    velocity[j] = a.velocity[j];
  }
  step_barrier();
  const bool per_example = a.gradients != nullptr;
  // Common shape (B / ranks <= 16 warps, d <= 32): each warp owns one example per step and loads
  // the next step's row while this step's dependent chain runs; the rows do not depend on theta.
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = kStepThreads / 32;
  const bool prefetch = mb <= warps && d <= 32;
  const bool owner = prefetch && warp < mb;
  float x_next = 0.0f, y_next = 0.0f;
  auto load = [&](int64_t step) {
    const int64_t row = a.order[step * mb + warp];
    x_next = lane < d ? a.X[row * d + lane] : 0.0f;
    y_next = a.y[row];
  };
  if (owner && a.steps > 0) load(0);
  for (int64_t k = 0; k < a.steps; ++k) {
    if (prefetch) {
      const float x = x_next, y = y_next;
      if (owner && k + 1 < a.steps) load(k + 1);
      if (owner) {
        double dot = lane < d ? static_cast<double>(x) * theta[lane] : 0.0;
        dot = warp_sum(dot);
        const float full = residual(logit_from_dot(dot, theta[d]), y);
        const float r = per_example ? full : full / static_cast<float>(mb);
        if (lane < d) rows[warp * D + lane] = r * x;
        if (lane == 0) rows[warp * D + d] = r;
        if (a.captured != nullptr) {
          float* out = a.captured + (k * mb + warp) * D;
          if (lane < d) out[lane] = full * x;
          if (lane == 0) out[d] = full;
        }
      }
    } else {
      gradient_rows(a, k, theta, per_example, rows,
                    a.captured != nullptr ? a.captured + k * mb * D : nullptr);
    }
    step_barrier();
    // Column sums in row order, one thread per parameter, as mean_of_rows / mean_loss_gradient.
    for (int64_t j = threadIdx.x; j < D; j += kStepThreads) {
      const float g = per_example ? column_mean(rows, mb, D, j) : column_sum(rows, mb, D, j);
      momentum_update(g, a.momentum, a.neg_lr, &velocity[j], &theta[j]);
    }
    if (per_example) {
      float* out = a.gradients + k * mb * D;
      for (int64_t i = threadIdx.x; i < mb * D; i += kStepThreads) out[i] = rows[i];
    }
    step_barrier();
    // Every step thread's rows of step k are written (the barrier orders them before this).
    if (kPerLane > 0 && threadIdx.x == 0)
      ::cuda::atomic_ref<int, ::cuda::thread_scope_block>(produced).store(
          static_cast<int>(k + 1), ::cuda::memory_order_release);
  }
  for (int64_t j = threadIdx.x; j < D; j += kStepThreads) {
    a.theta[j] = theta[j];
    a.velocity[j] = velocity[j];
  }
}

// Step k's gradients from the parameters as they are: per-example rows or the mean-loss gradient
// into `out` (when given), the per-example rows also into `captured` (when given).
__global__ void __launch_bounds__(kStepThreads)
    step_gradients_kernel(EpochArgs a, int64_t k, bool per_example, float* out, float* captured) {
  extern __shared__ float shared[];
  const int64_t D = a.geometry.D, mb = a.geometry.microbatch;
  float* theta = shared;
  float* rows = shared + D;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) theta[j] = a.theta[j];
  __syncthreads();
  gradient_rows(a, k, theta, per_example, rows, captured);
  if (out == nullptr) return;
  __syncthreads();
  if (per_example) {
    for (int64_t i = threadIdx.x; i < mb * D; i += blockDim.x) out[i] = rows[i];
  } else {
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) out[j] = column_sum(rows, mb, D, j);
  }
}

__global__ void step_update_kernel(EpochArgs a, const float* combined, int64_t rows, bool mean_rows,
                                   float ranks) {
  const int64_t D = a.geometry.D;
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    // Pair sorters: the gathered rows' mean. D-RR: the all-reduced sum / n (avg_grads /= n).
    const float g = mean_rows ? column_mean(combined, rows, D, j) : combined[j] / ranks;
    momentum_update(g, a.momentum, a.neg_lr, &a.velocity[j], &a.theta[j]);
  }
}

__global__ void __launch_bounds__(kEvalThreads)
    evaluate_kernel(const float* X, const float* y, int64_t rows, int64_t d, const float* theta,
                    EvalTotals* totals) {
  __shared__ double loss_part[kEvalThreads];
  __shared__ unsigned long long correct_part[kEvalThreads];
  double loss = 0.0;
  unsigned long long correct = 0;
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float z = logit(X + r * d, theta, d);
    loss += bce_with_logits(z, y[r]);
    correct += ((z > 0.0f) == (y[r] == 1.0f)) ? 1ull : 0ull;
  }
  loss_part[threadIdx.x] = loss;
  correct_part[threadIdx.x] = correct;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) {
      loss_part[threadIdx.x] += loss_part[threadIdx.x + half];
      correct_part[threadIdx.x] += correct_part[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    atomicAdd(&totals->loss, loss_part[0]);
    atomicAdd(&totals->correct, correct_part[0]);
  }
}

size_t fused_shared_bytes(const Geometry& g) { return ((g.microbatch + 2) * g.D) * sizeof(float); }

}  // namespace

bool fits_fused_kernel(const Geometry& geometry) {
  return static_cast<int64_t>(fused_shared_bytes(geometry) / sizeof(float)) <= kMaxSharedFloats;
}

void launch_fused_epoch(const EpochArgs& args, const PairBalanceArgs* pass, cudaStream_t stream) {
  const size_t bytes = fused_shared_bytes(args.geometry);
  if (pass == nullptr) {
    fused_epoch_kernel<0><<<1, kStepThreads, bytes, stream>>>(args, PairBalanceArgs{});
  } else if (!fits_pass_beside_steps(pass->layout.D) || pass->layout.ranks != 1 ||
             args.gradients == nullptr) {
    throw std::invalid_argument("launch_fused_epoch: this pair pass cannot run beside the steps");
  } else if (pass->layout.D <= 32) {
    fused_epoch_kernel<1><<<1, kStepThreads + 32, bytes, stream>>>(args, *pass);
  } else {
    fused_epoch_kernel<4><<<1, kStepThreads + 32, bytes, stream>>>(args, *pass);
  }
  check_launch("fused_epoch_kernel");
}

void launch_step_gradients(const EpochArgs& args, int64_t k, bool per_example, float* out,
                           cudaStream_t stream) {
  step_gradients_kernel<<<1, kStepThreads, fused_shared_bytes(args.geometry), stream>>>(
      args, k, per_example, out, nullptr);
  check_launch("step_gradients_kernel");
}

void launch_step_rows(const EpochArgs& args, int64_t k, float* out, cudaStream_t stream) {
  step_gradients_kernel<<<1, kStepThreads, fused_shared_bytes(args.geometry), stream>>>(
      args, k, /*per_example=*/true, nullptr, out);
  check_launch("step_gradients_kernel");
}

void launch_step_update(const EpochArgs& args, const float* combined, int64_t rows, bool mean_rows,
                        float ranks, cudaStream_t stream) {
  step_update_kernel<<<1, 128, 0, stream>>>(args, combined, rows, mean_rows, ranks);
  check_launch("step_update_kernel");
}

void launch_evaluate(const float* X, const float* y, int64_t rows, int64_t d, const float* theta,
                     EvalTotals* totals, cudaStream_t stream) {
  check(cudaMemsetAsync(totals, 0, sizeof(EvalTotals), stream), "cudaMemsetAsync");
  const int64_t wanted = (rows + kEvalThreads - 1) / kEvalThreads;
  const int blocks = static_cast<int>(wanted < 1024 ? (wanted > 0 ? wanted : 1) : 1024);
  evaluate_kernel<<<blocks, kEvalThreads, 0, stream>>>(X, y, rows, d, theta, totals);
  check_launch("evaluate_kernel");
}

}  // namespace khsgd::cuda
