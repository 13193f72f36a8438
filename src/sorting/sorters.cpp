// The paper's four sorters: D-RR, and the pair-balancing family (CD-GraB, SBW, KH-SGD) on the
// host, with their registry entries (sorter_registry.hpp).
#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <utility>

#include "khsgd/base/cores.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/sorting/pair_setup.hpp"
#include "khsgd/sorting/pair_sorter.hpp"
#include "khsgd/sorting/sorter_registry.hpp"

namespace khsgd {

namespace {

// D-RR (ALGORITHM.md §4.1): every epoch a fresh randperm(m) from the training device's generator.
// All ranks share the seed, so all draw the same permutation of their own shards. With
// draw_beside(), on a thread of its own while the steps read its first items: an epoch's steps
// need its items in order, and a permutation's are final in order.
class RandomReshuffle final : public Sorter {
 public:
  RandomReshuffle(const SorterShape& shape, DeviceOps& ops) : shape_(shape), ops_(ops) {}
  ~RandomReshuffle() override {
    if (drawer_.joinable()) drawer_.join();  // (an epoch cut short: what it threw is moot)
  }
  RandomReshuffle(const RandomReshuffle&) = delete;
  RandomReshuffle& operator=(const RandomReshuffle&) = delete;

  GradientNeed needs() const override { return GradientNeed::None; }
  const std::vector<int64_t>& sort() override {
    finish_draw();
    const int64_t m = shape_.shard_rows;
    if (beside_) {
      order_.resize(static_cast<size_t>(m));  // where the steps read it: the draw keeps it there
      drawn_.store(0, std::memory_order_relaxed);
      try {
        drawer_ = std::thread([this, m] {
          try {
            ops_.randperm_into(m, order_, &drawn_);
          } catch (...) {
            failure_ = std::current_exception();
            drawn_.store(m, std::memory_order_release);
          }
        });
        return order_;
      } catch (...) {  // no thread to be had: drawn here, as without
      }
    }
    ops_.randperm_into(m, order_);
    return order_;
  }
  // The seed is the same on every rank, so every rank draws the same permutation of its shard.
  const int64_t* order_of(int64_t) const override { return order_.data(); }
  void balance(const float*, int64_t, int64_t) override {}
  void draw_beside(bool allowed) override { beside_ = allowed; }
  void wait_for_order(int64_t items) override {
    if (!drawer_.joinable()) return;
    const int64_t needed = std::min(items, shape_.shard_rows);
    // The draw runs ~15 ns an item: spin while it is near, yield while the step loop is far ahead.
    wait_spinning([&] { return drawn_.load(std::memory_order_acquire) >= needed; }, 4096);
    // A draw that is done (or failed: its failure counts as done) is joined now, and what it
    // threw is rethrown before any step reads what it did not draw.
    if (drawn_.load(std::memory_order_acquire) >= shape_.shard_rows) finish_draw();
  }
  // Each epoch's permutation comes from the generator, whose state the checkpoint holds.
  void save_state(StateWriter&) const override {}
  void load_state(StateReader&) override {}

 private:
  // Joins the draw's thread, and rethrows what it threw.
  void finish_draw() {
    if (!drawer_.joinable()) return;
    drawer_.join();
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
  }

  SorterShape shape_;
  DeviceOps& ops_;
  std::vector<int64_t> order_;
  bool beside_ = false;
  std::thread drawer_;             // the draw beside the steps, while it runs
  std::atomic<int64_t> drawn_{0};  // items of order_ it has made final
  std::exception_ptr failure_;     // what it threw, written before drawn_ reaches m
};

// The pair-balancing family (ALGORITHM.md §4.2-§4.5) on the host: the decisions are
// pair_walk.hpp's, the bookkeeping between walks pair_sorter.hpp's, both shared with the CUDA
// twin (cuda_sorters.cu); this holds the state in host memory.
class PairBalancer final : public PairSorter {
 public:
  PairBalancer(PairRule rule, const SorterShape& shape, DeviceOps& ops)
      : PairSorter(rule, shape, ops),
        orders_(identity_orders(shape)),
        next_orders_(orders_),
        sum_(shape.D, 0.0f),
        delta_(shape.D),
        cursor_(epoch_start_cursor(rule, PairCursor{}, shape.shard_rows)) {
    PairTables tables = draw_pair_tables(rule, shape, ops);
    thresholds_ = std::move(tables.thresholds);
    log_penalty_ = std::move(tables.log_penalty);
    uniforms_ = std::move(tables.uniforms);
    tables_.rule = rule;
    point_tables();
  }

  void balance(const float* G, int64_t first_step, int64_t steps) override {
    check_walk_fits();
    HostPairRows rows(G, layout(), sum_.data(), delta_.data());
    walk_pairs(rows, tables_, layout(), first_step, steps, orders_.data(), next_orders_.data(),
               &cursor_);
  }

 private:
  void redraw(std::vector<float> uniforms, float increment) override {
    uniforms_ = std::move(uniforms);
    for (float& l : log_penalty_) l = l + increment;
    point_tables();
  }
  void start_epoch(const PairCursor& at) override {
    std::swap(orders_, next_orders_);
    std::fill(sum_.begin(), sum_.end(), 0.0f);
    cursor_ = at;
  }
  PairCursor cursor() const override { return cursor_; }
  const int64_t* orders() const override { return orders_.data(); }
  PairSorterState held_state() const override {
    PairSorterState state;
    state.next_orders = next_orders_;
    state.log_penalty = log_penalty_;
    return state;
  }
  void restore(PairSorterState state, const PairCursor& at) override {
    next_orders_ = std::move(state.next_orders);
    log_penalty_ = std::move(state.log_penalty);
    cursor_ = at;
    point_tables();
  }

  // The tables' pointers follow their vectors (redrawn or reloaded).
  void point_tables() {
    tables_.thresholds = thresholds_.data();
    tables_.log_penalty = log_penalty_.data();
    tables_.uniforms = uniforms_.data();
  }

  PairRuleTables tables_;
  std::vector<int64_t> orders_;       // this epoch's n x m order matrix
  std::vector<int64_t> next_orders_;  // the next epoch's, as the walk fills it
  std::vector<float> thresholds_, log_penalty_, uniforms_;
  std::vector<float> sum_;  // s, the running signed sum of differences
  std::vector<float> delta_;
  PairCursor cursor_;
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
  SorterInfo info = pair_sorter<PairRule::KHSGD>(
      "KH-SGD", "kernel halving with a self-tuning threshold (Low-Rank Thinning, ICML 2025)");
  info.torch_log_table = true;
  return info;
}

}  // namespace khsgd
