// Where walk_pairs() (khsgd/sorting/pair_walk.hpp) finds a pair's rows and the running sum on the
// GPU: one warp, lane c holding components c, c + 32, ..., <s, Delta> and |Delta|^2 summed across
// the warp (every lane gets the same totals, so every lane takes the same decision).
#pragma once

#include <cuda/atomic>

#include "cuda_util.cuh"
#include "khsgd/sorting/pair_walk.hpp"

namespace khsgd::cuda {

// A lane's partial dots summed over the warp.
__device__ inline PairDots warp_dots(PairDots dots, bool with_bsq) {
  dots.inner = warp_sum(dots.inner);
  if (with_bsq) dots.bsq = warp_sum(dots.bsq);
  return dots;
}

// s and the current and next pair's rows in registers (D <= 32 kPerLane): the next pair's loads
// run while this decision's dependent chain (warp sums, sign rule, update) does.
template <int kPerLane>
class RegisterPairRows {
 public:
  __device__ RegisterPairRows(const float* gradients, const PairLayout& layout, const float* sum)
      : gradients_(gradients), layout_(layout), lane_(threadIdx.x & 31) {
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) sum_[u] = in_range(u) ? sum[component(u)] : 0.0f;
  }

  __device__ void fetch(const PairAt& at) {
    const float* row = gradients_ + pair_rows_offset(layout_, at);
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) {
      next_first_[u] = in_range(u) ? row[component(u)] : 0.0f;
      next_second_[u] = in_range(u) ? row[layout_.D + component(u)] : 0.0f;
    }
  }
  __device__ void advance() {
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) {
      first_[u] = next_first_[u];
      second_[u] = next_second_[u];
    }
  }
  __device__ PairDots dots(bool with_bsq) {
    PairDots dots{0.0, 0.0};
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) {
      delta_[u] = second_[u] - first_[u];
      add_component(&dots, sum_[u], delta_[u], with_bsq);
    }
    return warp_dots(dots, with_bsq);
  }
  __device__ void move_sum(bool plus) {
#pragma unroll
    for (int u = 0; u < kPerLane; ++u) sum_[u] = moved_sum(sum_[u], delta_[u], plus);
  }
  __device__ bool writes_orders() const { return lane_ == 0; }

  __device__ void store_sum(float* sum) const {
#pragma unroll
    for (int u = 0; u < kPerLane; ++u)
      if (in_range(u)) sum[component(u)] = sum_[u];
  }

 protected:
  __device__ int64_t component(int u) const { return lane_ + 32 * u; }
  __device__ bool in_range(int u) const { return component(u) < layout_.D; }

  const float* gradients_;
  PairLayout layout_;
  int lane_;
  float sum_[kPerLane], first_[kPerLane], second_[kPerLane];
  float next_first_[kPerLane], next_second_[kPerLane], delta_[kPerLane];
};

// The same while the epoch's steps are still being computed by the other warps of the block: a
// decision's rows are read once `produced` (published by the step warps with release order) says
// their step is done.
template <int kPerLane>
class StreamedPairRows : public RegisterPairRows<kPerLane> {
 public:
  __device__ StreamedPairRows(const float* gradients, const PairLayout& layout, const float* sum,
                              int* produced)
      : RegisterPairRows<kPerLane>(gradients, layout, sum), produced_(produced) {}

  __device__ void fetch(const PairAt& at) {
    if (at.step >= ready_) {
      ::cuda::atomic_ref<int, ::cuda::thread_scope_block> produced(*produced_);
      while ((ready_ = produced.load(::cuda::memory_order_acquire)) <= at.step) __nanosleep(20);
    }
    RegisterPairRows<kPerLane>::fetch(at);
  }

 private:
  int* produced_;
  int64_t ready_ = 0;  // steps known to be done
};

// s in shared memory (any D; each lane reads and writes only its own components), the rows read
// where they lie.
class SharedPairRows {
 public:
  __device__ SharedPairRows(const float* gradients, const PairLayout& layout, float* shared_sum)
      : gradients_(gradients), layout_(layout), sum_(shared_sum), lane_(threadIdx.x & 31) {}

  __device__ void fetch(const PairAt& at) { next_ = gradients_ + pair_rows_offset(layout_, at); }
  __device__ void advance() { first_ = next_; }
  __device__ PairDots dots(bool with_bsq) {
    const float* second = first_ + layout_.D;
    PairDots dots{0.0, 0.0};
    for (int64_t c = lane_; c < layout_.D; c += 32)
      add_component(&dots, sum_[c], second[c] - first_[c], with_bsq);
    return warp_dots(dots, with_bsq);
  }
  __device__ void move_sum(bool plus) {
    const float* second = first_ + layout_.D;
    for (int64_t c = lane_; c < layout_.D; c += 32)
      sum_[c] = moved_sum(sum_[c], second[c] - first_[c], plus);
  }
  __device__ bool writes_orders() const { return lane_ == 0; }

 private:
  const float* gradients_;
  PairLayout layout_;
  float* sum_;
  int lane_;
  const float* first_ = nullptr;
  const float* next_ = nullptr;
};

}  // namespace khsgd::cuda
