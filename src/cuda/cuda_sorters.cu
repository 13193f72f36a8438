// The pair-balancing sorters with their state on the GPU, beside their CPU twin in sorters.cpp:
// the same tables, checks and checkpoint state (pair_setup.hpp), the same bookkeeping between
// walks (pair_sorter.hpp), the same decisions (pair_walk.hpp, walked by the kernels of
// pair_balance.cu or beside the steps in step_kernels.cu).
#include "cuda_util.cuh"
#include "kernels.cuh"
#include "khsgd/sorting/pair_setup.hpp"
#include "khsgd/sorting/pair_sorter.hpp"
#include "khsgd/sorting/sorters.hpp"

namespace khsgd {

namespace {

using cuda::DeviceBuffer;

// The family with its state in device memory; the bookkeeping between walks is pair_sorter.hpp's.
class CudaPairSorter final : public PairSorter {
 public:
  CudaPairSorter(PairRule rule, const SorterShape& shape, DeviceOps& ops)
      : PairSorter(rule, shape, ops) {
    const std::vector<int64_t> identity = identity_orders(shape);
    orders_.upload(identity);
    next_orders_.upload(identity);
    sum_.resize(shape.D);
    sum_.zero();
    cursor_.resize(1);
    const PairCursor start = epoch_start_cursor(rule, PairCursor{}, shape.shard_rows);
    cursor_.upload(&start, 1);
    const PairTables tables = draw_pair_tables(rule, shape, ops);
    if (rule == PairRule::KHSGD) {
      log_penalty_.upload(tables.log_penalty);
      uniforms_.upload(tables.uniforms);
    } else if (rule == PairRule::SBW) {
      thresholds_.upload(tables.thresholds);
    }
  }

  void balance(const float* G, int64_t first_step, int64_t steps) override {
    check_walk_fits();
    cuda::launch_pair_balance(pass(G, first_step, steps), nullptr);
  }

  // One rank only: with several, the epoch is stepped around the collective, not fused.
  bool pass_beside_steps(const float* gradients, int64_t steps,
                         cuda::PairBalanceArgs* out) override {
    check_walk_fits();
    *out = pass(gradients, 0, steps);
    return layout().ranks == 1 && cuda::fits_pass_beside_steps(layout().D);
  }

 private:
  void redraw(std::vector<float> uniforms, float increment) override {
    uniforms_.upload(uniforms);
    cuda::launch_add_scalar(log_penalty_.data(), log_penalty_.size(), increment, nullptr);
  }
  void start_epoch(const PairCursor& at) override {
    orders_.swap(next_orders_);
    sum_.zero();
    cursor_.upload(&at, 1);
    // The whole matrix (n m indices, a few MB at most, once an epoch), so that order_of() can
    // tell any rank's order as the host sorters do.
    host_orders_ = orders_.download(orders_.size());
  }
  PairCursor cursor() const override { return cursor_.download(1)[0]; }
  const int64_t* orders() const override { return host_orders_.data(); }
  PairSorterState held_state() const override {
    PairSorterState state;
    state.next_orders = next_orders_.download(next_orders_.size());
    if (rule_ == PairRule::KHSGD) state.log_penalty = log_penalty_.download(log_penalty_.size());
    return state;
  }
  void restore(PairSorterState state, const PairCursor& at) override {
    next_orders_.upload(state.next_orders);
    if (rule_ == PairRule::KHSGD) log_penalty_.upload(state.log_penalty);
    cursor_.upload(&at, 1);
  }

  // The pass over `steps` steps of gradients G (device memory) from step `first_step` on.
  cuda::PairBalanceArgs pass(const float* G, int64_t first_step, int64_t steps) {
    const PairRuleTables tables{rule_, thresholds_.data(), log_penalty_.data(), uniforms_.data()};
    return {tables,      layout(),      G, first_step, steps, orders_.data(), next_orders_.data(),
            sum_.data(), cursor_.data()};
  }

  DeviceBuffer<int64_t> orders_, next_orders_;
  DeviceBuffer<float> sum_;
  DeviceBuffer<PairCursor> cursor_;
  DeviceBuffer<float> log_penalty_, uniforms_, thresholds_;
  std::vector<int64_t> host_orders_;
};

}  // namespace

std::unique_ptr<Sorter> make_cuda_pair_sorter(PairRule rule, const SorterShape& shape,
                                              DeviceOps& ops) {
  return std::make_unique<CudaPairSorter>(rule, shape, ops);
}

}  // namespace khsgd
