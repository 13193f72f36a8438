#include "khsgd/sorters.hpp"

#include <algorithm>
#include <utility>

#include "khsgd/errors.hpp"
#include "khsgd/pair_setup.hpp"

namespace khsgd {

namespace {

// D-RR (ALGORITHM.md §4.1): every epoch a fresh randperm(m) from the training device's generator.
// All ranks share the seed, so all draw the same permutation of their own shards.
class RandomReshuffle final : public Sorter {
 public:
  RandomReshuffle(const SorterShape& shape, DeviceOps& ops) : shape_(shape), ops_(ops) {}
  bool balances_pairs() const override { return false; }
  const std::vector<int64_t>& sort() override {
    order_ = ops_.randperm(shape_.shard_rows);
    return order_;
  }
  // The seed is the same on every rank, so every rank draws the same permutation of its shard.
  const int64_t* order_of(int64_t) const override { return order_.data(); }
  void step(const float*, int64_t) override {}
  void balance_epoch(const float*, int64_t) override {}
  // Each epoch's permutation comes from the generator, whose state the checkpoint holds.
  void save_state(StateWriter&) const override {}
  void load_state(StateReader&) override {}

 private:
  SorterShape shape_;
  DeviceOps& ops_;
  std::vector<int64_t> order_;
};

// The pair-balancing family (ALGORITHM.md §4.2-§4.5) on the host: the decisions are
// pair_walk.hpp's, the tables and the checkpoint state pair_setup.hpp's, both shared with the CUDA
// twin (cuda_sorters.cu).
class PairBalancer final : public Sorter {
 public:
  PairBalancer(PairRule rule, const SorterShape& shape, DeviceOps& ops)
      : shape_(shape),
        layout_(pair_layout(shape)),
        ops_(ops),
        sum_(shape.D, 0.0f),
        delta_(shape.D) {
    tables_.rule = rule;
    orders_ = identity_orders(shape);
    state_.next_orders = orders_;
    cursor_ = epoch_start_cursor(rule, cursor_, shape.shard_rows);
    if (rule == PairRule::KHSGD) {
      state_.log_penalty = khsgd_log_penalties(shape, ops);
      uniforms_ = ops.uniform(khsgd_decisions(shape), -1.0, 1.0);
    } else if (rule == PairRule::SBW) {
      thresholds_ = sbw_thresholds(shape, ops);
    }
    point_tables();
  }

  bool balances_pairs() const override { return true; }

  const std::vector<int64_t>& sort() override {
    if (tables_.rule == PairRule::KHSGD && state_.sort_calls > 0) {
      uniforms_ = ops_.uniform(khsgd_decisions(shape_), -1.0, 1.0);
      const float increment = khsgd_penalty_increment(state_.sort_calls);
      for (float& l : state_.log_penalty) l = l + increment;
      point_tables();
    }
    std::swap(orders_, state_.next_orders);
    std::fill(sum_.begin(), sum_.end(), 0.0f);
    cursor_ = epoch_start_cursor(tables_.rule, cursor_, shape_.shard_rows);
    ++state_.sort_calls;
    const int64_t m = shape_.shard_rows;
    local_order_.assign(&orders_[shape_.rank * m], &orders_[(shape_.rank + 1) * m]);
    return local_order_;
  }

  const int64_t* order_of(int64_t rank) const override {
    return &orders_[rank * shape_.shard_rows];
  }

  void step(const float* G, int64_t k) override { balance(G, k, 1); }

  void balance_epoch(const float* G_all, int64_t num_batches) override {
    balance(G_all, 0, num_batches);
  }

  void save_state(StateWriter& out) const override {
    PairSorterState state = state_;
    state.sbw_decision = cursor_.decision;
    save_pair_state(out, tables_.rule, state);
  }
  void load_state(StateReader& in) override {
    load_pair_state(in, tables_.rule, static_cast<int64_t>(thresholds_.size()), shape_.shard_rows,
                    &state_);
    if (tables_.rule == PairRule::SBW) cursor_.decision = state_.sbw_decision;
    point_tables();
  }

 private:
  void balance(const float* G, int64_t first_step, int64_t steps) {
    HostPairRows rows(G, layout_, sum_.data(), delta_.data());
    walk_pairs(rows, tables_, layout_, first_step, steps, orders_.data(), state_.next_orders.data(),
               &cursor_);
  }

  // The tables' pointers follow their vectors (redrawn or reloaded).
  void point_tables() {
    tables_.thresholds = thresholds_.data();
    tables_.log_penalty = state_.log_penalty.data();
    tables_.uniforms = uniforms_.data();
  }

  SorterShape shape_;
  PairLayout layout_;
  DeviceOps& ops_;
  PairRuleTables tables_;
  PairSorterState state_;        // next_orders, the epoch count and KH-SGD's log-penalties
  std::vector<int64_t> orders_;  // this epoch's n x m order matrix
  std::vector<float> thresholds_, uniforms_;
  std::vector<float> sum_;  // s, the running signed sum of differences
  std::vector<float> delta_;
  PairCursor cursor_;
  std::vector<int64_t> local_order_;
};

}  // namespace

const int64_t* Sorter::order_of(int64_t) const {
  throw UserError(
      "this sorter keeps its orders on the GPU and cannot tell every rank's; "
      "--in_process runs on the CPU");
}

std::unique_ptr<Sorter> make_sorter(const std::string& name, const SorterShape& shape,
                                    DeviceOps& ops) {
  if (name == "D-RR") return std::make_unique<RandomReshuffle>(shape, ops);
  if (shape.device == Device::Cuda) {
#ifdef KHSGD_WITH_CUDA
    return make_cuda_pair_sorter(name, shape, ops);
#else
    throw UserError("--device cuda: this build has no CUDA support");
#endif
  }
  return std::make_unique<PairBalancer>(pair_rule_named(name), shape, ops);
}

}  // namespace khsgd
