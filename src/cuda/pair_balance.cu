// The pair-balancing pass on the GPU: the CUDA twin of PairBalancer::step in sorters.cpp.
//
// Decisions are sequential (each reads the running sum the previous one wrote), so one warp makes
// them all: lane c holds components c, c + 32, ... of the difference, the dot products are warp
// sums, and every lane evaluates the same sign rule on the same totals.
#include "cuda_util.cuh"
#include "kernels.cuh"
#include "khsgd/pair_rules.hpp"

namespace khsgd::cuda {

namespace {

__device__ inline double warp_sum(double value) {
  for (int offset = 16; offset > 0; offset >>= 1)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
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
        bool plus;
        switch (a.rule) {
          case PairRule::SBW:
            plus = sbw_adds(static_cast<float>(inner), a.thresholds[state.decision++]);
            break;
          case PairRule::KHSGD:
            plus = khsgd_adds(static_cast<float>(bsq), a.log_penalty[state.decision],
                              a.uniforms[state.decision], static_cast<float>(inner), &state.tau);
            ++state.decision;
            break;
          default:
            plus = cdgrab_adds(static_cast<float>(inner));
        }
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

__global__ void add_scalar_kernel(float* values, int64_t count, float increment) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    values[i] = values[i] + increment;
}

}  // namespace

void launch_pair_balance(const PairBalanceArgs& args, cudaStream_t stream) {
  pair_balance_kernel<<<1, 32, args.D * sizeof(float), stream>>>(args);
  check_launch("pair_balance_kernel");
}

void launch_add_scalar(float* values, int64_t count, float increment, cudaStream_t stream) {
  const int64_t wanted = (count + 255) / 256;
  const int blocks = static_cast<int>(wanted < 4096 ? (wanted > 0 ? wanted : 1) : 4096);
  add_scalar_kernel<<<blocks, 256, 0, stream>>>(values, count, increment);
  check_launch("add_scalar_kernel");
}

}  // namespace khsgd::cuda
