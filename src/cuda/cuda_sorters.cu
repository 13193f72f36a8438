// The pair-balancing sorters with their state on the GPU, beside their CPU twin in sorters.cpp:
// the same tables, checks and checkpoint state (pair_setup.hpp), the same decisions
// (pair_walk.hpp, walked by the kernels of pair_balance.cu or beside the steps in step_kernels.cu).
#include "cuda_util.cuh"
#include "kernels.cuh"
#include "khsgd/sorting/pair_setup.hpp"
#include "khsgd/sorting/sorters.hpp"

namespace khsgd {

namespace {

using cuda::DeviceBuffer;

class CudaPairSorter final : public Sorter {
 public:
  CudaPairSorter(PairRule rule, const SorterShape& shape, DeviceOps& ops)
      : shape_(shape), layout_(pair_layout(shape)), ops_(ops), rule_(rule) {
    const std::vector<int64_t> identity = identity_orders(shape);
    orders_.upload(identity);
    next_orders_.upload(identity);
    sum_.resize(shape.D);
    sum_.zero();
    cursor_.resize(1);
    start_cursor(PairCursor{});
    if (rule == PairRule::KHSGD) {
      log_penalty_.upload(khsgd_log_penalties(shape, ops));
      uniforms_.upload(ops.uniform(khsgd_decisions(shape), -1.0, 1.0));
    } else if (rule == PairRule::SBW) {
      thresholds_.upload(sbw_thresholds(shape, ops));
    }
  }

  GradientNeed needs() const override { return GradientNeed::AllRanks; }

  const std::vector<int64_t>& sort() override {
    if (rule_ == PairRule::KHSGD && sort_calls_ > 0) {
      uniforms_.upload(ops_.uniform(khsgd_decisions(shape_), -1.0, 1.0));
      cuda::launch_add_scalar(log_penalty_.data(), log_penalty_.size(),
                              khsgd_penalty_increment(sort_calls_), nullptr);
    }
    orders_.swap(next_orders_);
    sum_.zero();
    start_cursor(cursor_.download(1)[0]);
    ++sort_calls_;
    // The whole matrix (n m indices, a few MB at most, once an epoch), so that order_of() can
    // tell any rank's order as the host sorters do.
    host_orders_ = orders_.download(orders_.size());
    const int64_t m = shape_.shard_rows;
    local_order_.assign(host_orders_.begin() + shape_.rank * m,
                        host_orders_.begin() + (shape_.rank + 1) * m);
    return local_order_;
  }

  const int64_t* order_of(int64_t rank) const override {
    return host_orders_.data() + rank * shape_.shard_rows;
  }

  void balance(const float* G, int64_t first_step, int64_t steps) override {
    cuda::launch_pair_balance(pass(G, first_step, steps), nullptr);
  }

  // One rank only: with several, the epoch is stepped around the collective, not fused.
  bool pass_beside_steps(const float* gradients, int64_t steps,
                         cuda::PairBalanceArgs* out) override {
    *out = pass(gradients, 0, steps);
    return layout_.ranks == 1 && cuda::fits_pass_beside_steps(layout_.D);
  }

  void save_state(StateWriter& out) const override {
    PairSorterState state;
    state.sort_calls = sort_calls_;
    state.next_orders = next_orders_.download(next_orders_.size());
    state.sbw_decision = cursor_.download(1)[0].decision;
    if (rule_ == PairRule::KHSGD) state.log_penalty = log_penalty_.download(log_penalty_.size());
    save_pair_state(out, rule_, state);
  }
  void load_state(StateReader& in) override {
    PairSorterState state;
    state.next_orders.resize(next_orders_.size());
    state.log_penalty.resize(log_penalty_.size());
    load_pair_state(in, rule_, static_cast<int64_t>(thresholds_.size()), shape_.shard_rows, &state);
    sort_calls_ = state.sort_calls;
    next_orders_.upload(state.next_orders);
    if (rule_ == PairRule::SBW) {
      PairCursor cursor = cursor_.download(1)[0];
      cursor.decision = state.sbw_decision;
      cursor_.upload(&cursor, 1);
    }
    if (rule_ == PairRule::KHSGD) log_penalty_.upload(state.log_penalty);
  }

 private:
  // The pass over `steps` steps of gradients G (device memory) from step `first_step` on.
  cuda::PairBalanceArgs pass(const float* G, int64_t first_step, int64_t steps) {
    const PairRuleTables tables{rule_, thresholds_.data(), log_penalty_.data(), uniforms_.data()};
    return {tables,      layout_,       G, first_step, steps, orders_.data(), next_orders_.data(),
            sum_.data(), cursor_.data()};
  }

  void start_cursor(const PairCursor& before) {
    const PairCursor cursor = epoch_start_cursor(rule_, before, shape_.shard_rows);
    cursor_.upload(&cursor, 1);
  }

  SorterShape shape_;
  PairLayout layout_;
  DeviceOps& ops_;
  PairRule rule_;
  int64_t sort_calls_ = 0;
  DeviceBuffer<int64_t> orders_, next_orders_;
  DeviceBuffer<float> sum_;
  DeviceBuffer<PairCursor> cursor_;
  DeviceBuffer<float> log_penalty_, uniforms_, thresholds_;
  std::vector<int64_t> host_orders_, local_order_;
};

}  // namespace

std::unique_ptr<Sorter> make_cuda_pair_sorter(PairRule rule, const SorterShape& shape,
                                              DeviceOps& ops) {
  return std::make_unique<CudaPairSorter>(rule, shape, ops);
}

}  // namespace khsgd
