// The pair-balancing pass on the GPU after the steps (several ranks, --profile, or D too large to
// run beside them): walk_pairs() of pair_walk.hpp, as on the CPU, with one warp's rows.
#include "kernels.cuh"
#include "pair_rows.cuh"

namespace khsgd::cuda {

namespace {

template <int kPerLane>
__global__ void __launch_bounds__(32) pair_balance_registers_kernel(PairBalanceArgs a) {
  RegisterPairRows<kPerLane> rows(a.gradients, a.layout, a.sum);
  PairCursor cursor = *a.cursor;
  walk_pairs(rows, a.tables, a.layout, a.first_step, a.steps, a.orders, a.next_orders, &cursor);
  rows.store_sum(a.sum);
  if (rows.writes_orders()) *a.cursor = cursor;
}

__global__ void __launch_bounds__(32) pair_balance_shared_kernel(PairBalanceArgs a) {
  extern __shared__ float sum[];  // [D]
  for (int64_t c = threadIdx.x; c < a.layout.D; c += 32) sum[c] = a.sum[c];
  SharedPairRows rows(a.gradients, a.layout, sum);
  PairCursor cursor = *a.cursor;
  walk_pairs(rows, a.tables, a.layout, a.first_step, a.steps, a.orders, a.next_orders, &cursor);
  for (int64_t c = threadIdx.x; c < a.layout.D; c += 32) a.sum[c] = sum[c];
  if (rows.writes_orders()) *a.cursor = cursor;
}

__global__ void add_scalar_kernel(float* values, int64_t count, float increment) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    values[i] = values[i] + increment;
}

}  // namespace

bool fits_pass_beside_steps(int64_t D) { return D <= 4 * 32; }

void launch_pair_balance(const PairBalanceArgs& args, cudaStream_t stream, PairKernel kernel) {
  if (kernel == PairKernel::Auto)
    kernel = args.layout.D <= 32    ? PairKernel::Registers1
             : args.layout.D <= 128 ? PairKernel::Registers4
                                    : PairKernel::SharedMemory;
  if ((kernel == PairKernel::Registers1 && args.layout.D > 32) ||
      (kernel == PairKernel::Registers4 && args.layout.D > 128))
    throw std::invalid_argument("launch_pair_balance: D = " + std::to_string(args.layout.D) +
                                " does not fit the register kernel asked for");
  switch (kernel) {
    case PairKernel::Registers1:
      pair_balance_registers_kernel<1><<<1, 32, 0, stream>>>(args);
      break;
    case PairKernel::Registers4:
      pair_balance_registers_kernel<4><<<1, 32, 0, stream>>>(args);
      break;
    default: pair_balance_shared_kernel<<<1, 32, args.layout.D * sizeof(float), stream>>>(args);
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
