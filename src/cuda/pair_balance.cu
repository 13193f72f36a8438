// The pair-balancing pass on the GPU: the CUDA twin of PairBalancer::step in sorters.cpp.
//
// Decisions are sequential (each reads the running sum the previous one wrote), so one warp makes
// them all: lane c holds components c, c + 32, ... of the difference, the dot products are warp
// sums, and every lane evaluates the same sign rule on the same totals. The generic kernel keeps
// the running sum in shared memory (any D); the register kernel (D <= 128) also prefetches.
#include "cuda_util.cuh"
#include "kernels.cuh"
#include "khsgd/pair_rules.hpp"

namespace khsgd::cuda {

namespace {

// The rule's sign for one decision; `table0`/`table1` are SBW's threshold or KH-SGD's log-penalty
// and uniform for this decision.
__device__ inline bool decide(PairRule rule, double inner, double bsq, float table0, float table1,
                              double* tau) {
  switch (rule) {
    case PairRule::SBW:
      return sbw_adds(static_cast<float>(inner), table0);
    case PairRule::KHSGD:
      return khsgd_adds(static_cast<float>(bsq), table0, table1, static_cast<float>(inner), tau);
    default:
      return cdgrab_adds(static_cast<float>(inner));
  }
}

// SBW's threshold or KH-SGD's (log-penalty, uniform) for a decision; nothing for CD-GraB.
__device__ inline void tables_at(const PairBalanceArgs& a, int64_t decision, float* table0, float* table1) {
  if (a.rule == PairRule::SBW) *table0 = a.thresholds[decision];
  if (a.rule == PairRule::KHSGD) {
    *table0 = a.log_penalty[decision];
    *table1 = a.uniforms[decision];
  }
}

__global__ void pair_balance_kernel(PairBalanceArgs a) {
  extern __shared__ float sum[];  // [D], the running signed sum s
  const int lane = threadIdx.x;
  const int64_t D = a.D, mb = a.microbatch, m = a.shard_rows;
  for (int64_t c = lane; c < D; c += 32) sum[c] = a.sum[c];
  PairState state = *a.state;
  __syncwarp();
  for (int64_t s = 0; s < a.steps; ++s) {
    const int64_t k = a.first_step + s;
    const float* step_rows = a.gradients + s * a.ranks * mb * D;
    for (int64_t p = 0; p < mb / 2; ++p) {
      for (int64_t j = 0; j < a.ranks; ++j) {
        const float* first = step_rows + (j * mb + 2 * p) * D;
        const float* second = first + D;
        double inner = 0.0, bsq = 0.0;
        for (int64_t c = lane; c < D; c += 32) {
          const float delta = second[c] - first[c];
          inner += static_cast<double>(sum[c]) * delta;
          const float square = delta * delta;
          bsq += square;
        }
        inner = warp_sum(inner);
        bsq = warp_sum(bsq);
        float table0 = 0.0f, table1 = 0.0f;
        tables_at(a, state.decision, &table0, &table1);
        const bool plus = decide(a.rule, inner, bsq, table0, table1, &state.tau);
        ++state.decision;  // counted for every rule; only SBW's and KH-SGD's tables read it
        __syncwarp();  // every lane has read sum[] for this decision
        for (int64_t c = lane; c < D; c += 32) {
          const float delta = second[c] - first[c];
          sum[c] = plus ? sum[c] + delta : sum[c] - delta;
        }
        if (lane == 0) {
          const int64_t a_index = a.orders[j * m + k * mb + 2 * p];
          const int64_t b_index = a.orders[j * m + k * mb + 2 * p + 1];
          a.next_orders[j * m + (plus ? state.left : state.right)] = a_index;
          a.next_orders[j * m + (plus ? state.right : state.left)] = b_index;
        }
        __syncwarp();
      }
      ++state.left;
      --state.right;
    }
  }
  for (int64_t c = lane; c < D; c += 32) a.sum[c] = sum[c];
  if (lane == 0) *a.state = state;
}

// The same pass with the running sum and the pair's rows in registers (D <= 32 kPerLane): while
// one decision's dependent chain (warp sums, sign rule, update) runs, the next decision's rows are
// already being loaded; they do not depend on any decision.
template <int kPerLane>
__global__ void pair_balance_registers_kernel(PairBalanceArgs a) {
  const int lane = threadIdx.x;
  const int64_t D = a.D, mb = a.microbatch, m = a.shard_rows, n = a.ranks;
  const int64_t pairs = mb / 2, per_step = pairs * n, total = a.steps * per_step;
  float sum[kPerLane], first[kPerLane], second[kPerLane], next_first[kPerLane], next_second[kPerLane];
#pragma unroll
  for (int u = 0; u < kPerLane; ++u) {
    const int64_t c = lane + 32 * u;
    sum[u] = c < D ? a.sum[c] : 0.0f;
  }
  auto load = [&](int64_t q, float* f, float* s) {
    const int64_t step = q / per_step, p = (q % per_step) / n, j = q % n;
    const float* row = a.gradients + ((step * n + j) * mb + 2 * p) * D;
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) {
      const int64_t c = lane + 32 * u;
      f[u] = c < D ? row[c] : 0.0f;
      s[u] = c < D ? row[D + c] : 0.0f;
    }
  };
  // The sign rules' table entries are read in decision order too: prefetched alike.
  PairState state = *a.state;
  float table0 = 0.0f, table1 = 0.0f, next_table0 = 0.0f, next_table1 = 0.0f;
  if (total > 0) {
    load(0, first, second);
    tables_at(a, state.decision, &table0, &table1);
  }
  for (int64_t q = 0; q < total; ++q) {
    if (q + 1 < total) {
      load(q + 1, next_first, next_second);
      tables_at(a, state.decision + 1, &next_table0, &next_table1);
    }
    const int64_t p = (q % per_step) / n, j = q % n, k = a.first_step + q / per_step;
    float delta[kPerLane];
    double inner = 0.0, bsq = 0.0;
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) {
      delta[u] = second[u] - first[u];
      inner += static_cast<double>(sum[u]) * delta[u];
      const float square = delta[u] * delta[u];
      bsq += square;
    }
    inner = warp_sum(inner);
    bsq = warp_sum(bsq);
    const bool plus = decide(a.rule, inner, bsq, table0, table1, &state.tau);
    ++state.decision;  // counted for every rule; only SBW's and KH-SGD's tables read it
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) sum[u] = plus ? sum[u] + delta[u] : sum[u] - delta[u];
    if (lane == 0) {
      const int64_t a_index = a.orders[j * m + k * mb + 2 * p];
      const int64_t b_index = a.orders[j * m + k * mb + 2 * p + 1];
      a.next_orders[j * m + (plus ? state.left : state.right)] = a_index;
      a.next_orders[j * m + (plus ? state.right : state.left)] = b_index;
    }
    if (j == n - 1) {  // every rank has placed its pair p
      ++state.left;
      --state.right;
    }
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) {
      first[u] = next_first[u];
      second[u] = next_second[u];
    }
    table0 = next_table0;
    table1 = next_table1;
  }
#pragma unroll
  for (int u = 0; u < kPerLane; ++u) {
    const int64_t c = lane + 32 * u;
    if (c < D) a.sum[c] = sum[u];
  }
  if (lane == 0) *a.state = state;
}

__global__ void add_scalar_kernel(float* values, int64_t count, float increment) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    values[i] = values[i] + increment;
}

}  // namespace

void launch_pair_balance(const PairBalanceArgs& args, cudaStream_t stream) {
  if (args.D <= 32) {
    pair_balance_registers_kernel<1><<<1, 32, 0, stream>>>(args);
  } else if (args.D <= 128) {
    pair_balance_registers_kernel<4><<<1, 32, 0, stream>>>(args);
  } else {
    pair_balance_kernel<<<1, 32, args.D * sizeof(float), stream>>>(args);
  }
  check_launch("pair_balance_kernel");
}

void launch_add_scalar(float* values, int64_t count, float increment, cudaStream_t stream) {
  const int64_t wanted = (count + 255) / 256;
  const int blocks = static_cast<int>(wanted < 4096 ? (wanted > 0 ? wanted : 1) : 4096);
  add_scalar_kernel<<<blocks, 256, 0, stream>>>(values, count, increment);
  check_launch("add_scalar_kernel");
}

}  // namespace khsgd::cuda
