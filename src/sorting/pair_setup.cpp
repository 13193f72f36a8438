#include "khsgd/sorting/pair_setup.hpp"

#include <cmath>
#include <numeric>
#include <utility>

#include "khsgd/base/errors.hpp"

namespace khsgd {

namespace {

constexpr double kDelta = 0.5;  // the failure probability both SBW and KH-SGD are tuned for

}  // namespace

PairLayout pair_layout(const SorterShape& shape) { return shape.geometry(); }

std::vector<int64_t> identity_orders(const SorterShape& shape) {
  const int64_t m = shape.shard_rows;
  std::vector<int64_t> orders(shape.ranks * m);
  for (int64_t j = 0; j < shape.ranks; ++j) std::iota(&orders[j * m], &orders[(j + 1) * m], 0);
  return orders;
}

int64_t sbw_threshold_count(const SorterShape& shape) {
  return shape.shard_rows * shape.ranks * shape.epochs / 2;
}

std::vector<float> sbw_thresholds(const SorterShape& shape, DeviceOps& ops) {
  const int64_t count = sbw_threshold_count(shape);
  if (count > (int64_t{1} << 30))
    throw UserError("SBW draws m*n*epochs/2 = " + std::to_string(count) +
                    " thresholds up front (more than 4 GiB); use fewer --epochs");
  // The reference's constants: b_max = sqrt(20875), scale = b_max 30 ln(m E D / delta / 2).
  const double b_max = std::sqrt(20875.0);
  const double scale =
      b_max * 30 *
      std::log(static_cast<double>(shape.shard_rows * shape.epochs * shape.D) / kDelta / 2);
  std::vector<float> thresholds = ops.uniform(count, 0.0, 1.0);
  const float scale_f = static_cast<float>(scale);
  for (float& t : thresholds) t = scale_f * (1.0f - 2.0f * t);
  return thresholds;
}

int64_t khsgd_decisions(const SorterShape& shape) { return shape.ranks * shape.shard_rows / 2; }

std::vector<float> khsgd_log_penalties(const SorterShape& shape, DeviceOps& ops) {
  const int64_t T = khsgd_decisions(shape);
  const double constant = (4 / kDelta) * (std::log(static_cast<double>(shape.epochs)) + 1) *
                          (std::log(static_cast<double>(T)) + 1);
  return ops.log_of_multiples(constant, T);
}

PairTables draw_pair_tables(PairRule rule, const SorterShape& shape, DeviceOps& ops) {
  PairTables tables;
  if (rule == PairRule::KHSGD) {
    tables.log_penalty = khsgd_log_penalties(shape, ops);
    tables.uniforms = ops.uniform(khsgd_decisions(shape), -1.0, 1.0);
  } else if (rule == PairRule::SBW) {
    tables.thresholds = sbw_thresholds(shape, ops);
  }
  return tables;
}

float khsgd_penalty_increment(int64_t earlier) {
  return static_cast<float>(std::log(1.0 + 1.0 / static_cast<double>(earlier)));
}

void save_pair_state(StateWriter& out, PairRule rule, const PairSorterState& state) {
  out.i64(state.sort_calls);
  out.indices(state.next_orders);
  if (rule == PairRule::SBW) out.i64(state.sbw_decision);
  if (rule == PairRule::KHSGD) out.floats(state.log_penalty);
}

void load_pair_state(StateReader& in, PairRule rule, const SorterShape& shape,
                     PairSorterState* state) {
  state->sort_calls = in.i64();
  if (state->sort_calls < 0) in.corrupt("negative epoch count");
  if (state->sort_calls > shape.epochs)
    in.corrupt(std::to_string(state->sort_calls) + " epochs sorted, the run has " +
               std::to_string(shape.epochs));
  std::vector<int64_t> next = in.indices();
  in.expect_size(next.size(), state->next_orders.size(), "the order matrix");
  in.expect_permutations(next, shape.shard_rows, "the order matrix");
  state->next_orders = std::move(next);
  if (rule == PairRule::SBW) {
    state->sbw_decision = in.i64();
    const int64_t per_epoch = khsgd_decisions(shape);  // n*m/2, an epoch's decisions
    const int64_t high = state->sort_calls * per_epoch;
    const int64_t low = state->sort_calls > 0 ? high - per_epoch : 0;
    if (state->sbw_decision < low || state->sbw_decision > high ||
        state->sbw_decision > sbw_threshold_count(shape))
      in.corrupt("SBW's counter " + std::to_string(state->sbw_decision) +
                 " does not fit its epoch count " + std::to_string(state->sort_calls));
  }
  if (rule == PairRule::KHSGD) {
    std::vector<float> penalties = in.floats();
    in.expect_size(penalties.size(), state->log_penalty.size(), "KH-SGD's log-penalty table");
    state->log_penalty = std::move(penalties);
  }
}

}  // namespace khsgd
