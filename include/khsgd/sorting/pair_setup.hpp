// The host side of the pair-balancing sorters, shared by the CPU ones (sorters.cpp) and the CUDA
// ones (src/cuda/cuda_sorters.cu): the layout, the tables drawn at construction (in ALGORITHM.md
// §5's order) and what a checkpoint holds. The decisions are in pair_walk.hpp.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "khsgd/base/device.hpp"
#include "khsgd/sorting/device_ops.hpp"
#include "khsgd/sorting/pair_walk.hpp"
#include "khsgd/sorting/sorters.hpp"
#include "khsgd/sorting/state_io.hpp"

namespace khsgd {

// The walk's layout of `shape`, whose shard and microbatch hold whole pairs (make_sorter checks
// that, sorter_registry.hpp's shape_problem()).
PairLayout pair_layout(const SorterShape& shape);

#ifdef KHSGD_WITH_CUDA
// The family with its state on the GPU (src/cuda/cuda_sorters.cu).
std::unique_ptr<Sorter> make_cuda_pair_sorter(PairRule rule, const SorterShape& shape,
                                              DeviceOps& ops);
#endif

// The order matrices' start: each of the n rows is 0 .. m-1, so epoch 1 runs in natural order.
std::vector<int64_t> identity_orders(const SorterShape& shape);

// How many thresholds SBW draws: m n E / 2.
int64_t sbw_threshold_count(const SorterShape& shape);
// SBW's thresholds scale * (1 - 2u) for u = rand(m n E / 2) from `ops`, in float32 like the
// reference's tensor ops. UserError when they would not fit in memory.
std::vector<float> sbw_thresholds(const SorterShape& shape, DeviceOps& ops);

// KH-SGD's decisions per epoch, T = n m / 2 (one per pair and rank).
int64_t khsgd_decisions(const SorterShape& shape);
// KH-SGD's log-penalties ln((4/delta)(ln E + 1)(1 + ln T) t), t = 1 .. T, from `ops` in float32.
std::vector<float> khsgd_log_penalties(const SorterShape& shape, DeviceOps& ops);
// What sort() adds to every log-penalty after `earlier` earlier sort() calls: ln(1 + 1/c) rounded
// to float32, so that epoch e carries + ln e as the reference rounds it.
float khsgd_penalty_increment(int64_t earlier);

// The tables a pair sorter draws at construction, in ALGORITHM.md §5's order: KH-SGD's
// log-penalties then its first uniforms, or SBW's thresholds (CD-GraB draws none; the others stay
// empty).
struct PairTables {
  std::vector<float> thresholds, log_penalty, uniforms;
};
PairTables draw_pair_tables(PairRule rule, const SorterShape& shape, DeviceOps& ops);

// What a pair sorter's checkpoint holds between epochs: the next epoch's order matrix and the
// epoch count, SBW's decision counter, KH-SGD's log-penalties (which carry every earlier epoch's
// increment). The running sum, the pointers, tau and KH-SGD's counter are reset by sort().
struct PairSorterState {
  int64_t sort_calls = 0;
  std::vector<int64_t> next_orders;
  int64_t sbw_decision = 0;
  std::vector<float> log_penalty;
};

void save_pair_state(StateWriter& out, PairRule rule, const PairSorterState& state);
// Reads into `state`, whose vectors hold this run's sizes (a checkpoint of another shape is
// corrupt); every order must name a row in [0, shape.shard_rows); at most shape.epochs epochs
// sorted; SBW's counter where sort_calls epochs put it (each epoch walks n*m/2 decisions, so it is
// in [(sort_calls - 1) n m / 2, sort_calls n m / 2]: the epochs left then stay inside the
// thresholds). Throws UserError.
void load_pair_state(StateReader& in, PairRule rule, const SorterShape& shape,
                     PairSorterState* state);

}  // namespace khsgd
