// The bookkeeping a pair-balancing sorter (ALGORITHM.md §4.2-§4.5) does around its walks, wherever
// its state lives: the tables drawn at construction, what sort() does between epochs (KH-SGD's
// fresh uniforms and penalty increment, the order matrices' swap, the running sum and the cursor
// reset, the epoch count), this rank's order, and the checkpoint state. The host sorter
// (sorters.cpp) and its CUDA twin (src/cuda/cuda_sorters.cu) supply the storage and the walk.
// Header-only, for the reason Sorter has no key function: the CUDA twins need nothing from the
// sorters library.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "khsgd/base/errors.hpp"
#include "khsgd/sorting/device_ops.hpp"
#include "khsgd/sorting/pair_setup.hpp"
#include "khsgd/sorting/pair_walk.hpp"
#include "khsgd/sorting/sorters.hpp"
#include "khsgd/sorting/state_io.hpp"

namespace khsgd {

class PairSorter : public Sorter {
 public:
  GradientNeed needs() const final { return GradientNeed::AllRanks; }

  const std::vector<int64_t>& sort() final {
    if (rule_ == PairRule::KHSGD && sort_calls_ > 0)
      redraw(ops_.uniform(khsgd_decisions(shape_), -1.0, 1.0),
             khsgd_penalty_increment(sort_calls_));
    start_epoch(epoch_start_cursor(rule_, cursor(), shape_.shard_rows));
    ++sort_calls_;
    const int64_t* mine = order_of(shape_.rank);
    local_order_.assign(mine, mine + shape_.shard_rows);
    return local_order_;
  }

  const int64_t* order_of(int64_t rank) const final { return orders() + rank * shape_.shard_rows; }

  void save_state(StateWriter& out) const final {
    PairSorterState state = held_state();
    state.sort_calls = sort_calls_;
    state.sbw_decision = cursor().decision;
    save_pair_state(out, rule_, state);
  }

  void load_state(StateReader& in) final {
    PairSorterState state;
    state.next_orders.resize(shape_.ranks * shape_.shard_rows);
    if (rule_ == PairRule::KHSGD) state.log_penalty.resize(khsgd_decisions(shape_));
    load_pair_state(in, rule_, shape_, &state);
    sort_calls_ = state.sort_calls;
    PairCursor at = cursor();
    if (rule_ == PairRule::SBW) at.decision = state.sbw_decision;
    restore(std::move(state), at);
  }

 protected:
  // The storage's constructor then takes draw_pair_tables(rule, shape, ops) and starts its cursor
  // at epoch_start_cursor(rule, {}, m).
  PairSorter(PairRule rule, const SorterShape& shape, DeviceOps& ops)
      : shape_(shape), ops_(ops), rule_(rule) {}

  // Before a walk: SBW's thresholds are drawn for shape_.epochs epochs (its counter runs across
  // them), so an epoch past those (a sort() after the last, which only reads the last walk's
  // order, is fine) must not walk: it would read past the table. KH-SGD's tables are per epoch.
  void check_walk_fits() const {
    if (rule_ == PairRule::SBW && sort_calls_ > shape_.epochs)
      throw UserError("SBW was built for " + std::to_string(shape_.epochs) + " epochs; epoch " +
                      std::to_string(sort_calls_) + "'s steps would read past its thresholds");
  }
  // KH-SGD's next epoch: these uniforms, and `increment` added to every log-penalty.
  virtual void redraw(std::vector<float> uniforms, float increment) = 0;
  // An epoch starts: next_orders becomes the order matrix, s = 0, the cursor is `at`.
  virtual void start_epoch(const PairCursor& at) = 0;
  virtual PairCursor cursor() const = 0;
  // This epoch's n x m order matrix, in host memory.
  virtual const int64_t* orders() const = 0;
  // next_orders and (KH-SGD) the log-penalties, for a checkpoint.
  virtual PairSorterState held_state() const = 0;
  // Back from a checkpoint: next_orders, the log-penalties (KH-SGD) and the cursor `at`.
  virtual void restore(PairSorterState state, const PairCursor& at) = 0;

  // The walk's layout: the shape's geometry (pair_layout()), not a copy of it.
  const PairLayout& layout() const { return shape_; }

  SorterShape shape_;
  DeviceOps& ops_;
  PairRule rule_;

 private:
  int64_t sort_calls_ = 0;
  std::vector<int64_t> local_order_;
};

}  // namespace khsgd
