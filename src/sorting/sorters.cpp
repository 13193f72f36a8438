// The paper's four sorters: D-RR, and the pair-balancing family (CD-GraB, SBW, KH-SGD) on the
// host, with their registry entries (sorter_registry.hpp).
#include <algorithm>
#include <utility>

#include "khsgd/base/errors.hpp"
#include "khsgd/sorting/pair_setup.hpp"
#include "khsgd/sorting/sorter_registry.hpp"

namespace khsgd {

namespace {

// D-RR (ALGORITHM.md §4.1): every epoch a fresh randperm(m) from the training device's generator.
// All ranks share the seed, so all draw the same permutation of their own shards.
class RandomReshuffle final : public Sorter {
 public:
  RandomReshuffle(const SorterShape& shape, DeviceOps& ops) : shape_(shape), ops_(ops) {}
  GradientNeed needs() const override { return GradientNeed::None; }
  const std::vector<int64_t>& sort() override {
    order_ = ops_.randperm(shape_.shard_rows);
    return order_;
  }
  // The seed is the same on every rank, so every rank draws the same permutation of its shard.
  const int64_t* order_of(int64_t) const override { return order_.data(); }
  void balance(const float*, int64_t, int64_t) override {}
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

  GradientNeed needs() const override { return GradientNeed::AllRanks; }

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

  void balance(const float* G, int64_t first_step, int64_t steps) override {
    HostPairRows rows(G, layout_, sum_.data(), delta_.data());
    walk_pairs(rows, tables_, layout_, first_step, steps, orders_.data(), state_.next_orders.data(),
               &cursor_);
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

template <PairRule rule>
std::unique_ptr<Sorter> make_host_pair_sorter(const SorterShape& shape, DeviceOps& ops) {
  return std::make_unique<PairBalancer>(rule, shape, ops);
}

// khsgd_train never gets here without CUDA (trainer.cpp refuses --device cuda first); a program
// using the sorters library does, and learns why.
template <PairRule rule>
std::unique_ptr<Sorter> make_gpu_pair_sorter(const SorterShape& shape, DeviceOps& ops) {
#ifdef KHSGD_WITH_CUDA
  return make_cuda_pair_sorter(rule, shape, ops);
#else
  (void)shape;
  (void)ops;
  throw UserError(
      "a pair sorter on Device::Cuda (--device cuda): this build of the khsgd sorters has no CUDA "
      "support (built without a CUDA LibTorch); use Device::Cpu");
#endif
}

std::unique_ptr<Sorter> make_random_reshuffle(const SorterShape& shape, DeviceOps& ops) {
  return std::make_unique<RandomReshuffle>(shape, ops);
}

// The family's entries: the same needs, constraint and time labels, their own rule.
template <PairRule rule>
SorterInfo pair_sorter(const char* name, const char* description) {
  SorterInfo info;
  info.name = name;
  info.description = description;
  info.paper = true;  // the family is the paper's three balancing sorters
  info.needs = GradientNeed::AllRanks;
  info.even_microbatch = true;
  info.host = &make_host_pair_sorter<rule>;
  info.cuda = &make_gpu_pair_sorter<rule>;
  info.time_labels = kGatherBufferFirst;
  return info;
}

}  // namespace

SorterInfo drr_sorter() {
  SorterInfo info;
  info.name = "D-RR";
  info.description = "a fresh random permutation every epoch (distributed random reshuffling)";
  info.paper = true;
  info.needs = GradientNeed::None;
  // Its state is the device generator's, which `ops` draws from: the host sorter serves both.
  info.host = &make_random_reshuffle;
  info.cuda = &make_random_reshuffle;
  info.time_labels = kReduceAfterBackward;
  return info;
}

SorterInfo cd_grab_sorter() {
  return pair_sorter<PairRule::CDGraB>(
      "CD-GraB", "greedy balancing of pairs of all ranks' gradients (Cooper et al., NeurIPS 2023)");
}

SorterInfo sbw_sorter() {
  return pair_sorter<PairRule::SBW>(
      "SBW", "the self-balancing walk (Alweiss et al.) on pair differences of all ranks");
}

SorterInfo kh_sgd_sorter() {
  return pair_sorter<PairRule::KHSGD>(
      "KH-SGD", "kernel halving with a self-tuning threshold (Low-Rank Thinning, ICML 2025)");
}

}  // namespace khsgd
