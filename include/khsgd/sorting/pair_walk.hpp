// The pair-balancing pass (ALGORITHM.md §4.2, step()), written once for the CPU sorters and the
// CUDA kernels.
//
// For every step, pair p (outer loop) and rank j (inner loop) the sign rule decides whether the
// pair's first example goes to the front of the next epoch's order (s += Delta) or to the back
// (s -= Delta). The CPU and the GPU differ only in where a pair's two rows and the running sum s
// live and in how <s, Delta> is summed (one core, components in order; a warp's lanes, then a warp
// sum): a "rows" type supplies that (HostPairRows below; the kernels' in src/cuda/pair_rows.cuh),
// and walk_pairs() does all the rest, so the CPU tests run every line of the bookkeeping the GPU
// runs.
#pragma once

#include <cstdint>

#include "khsgd/base/geometry.hpp"
#include "khsgd/base/host_device.hpp"
#include "khsgd/sorting/pair_rules.hpp"

namespace khsgd {

enum class PairRule : int { CDGraB = 0, SBW = 1, KHSGD = 2 };

// n ranks with m examples each, `microbatch` examples per rank and step, D numbers per gradient.
using PairLayout = Geometry;

// microbatch / 2 pairs on each rank.
KHSGD_HOST_DEVICE inline int64_t decisions_per_step(const PairLayout& layout) {
  return layout.microbatch / 2 * layout.ranks;
}

// Where a decision of a walk is: its step (counted from the walk's first step), pair and rank.
struct PairAt {
  int64_t step;
  int64_t pair;
  int64_t rank;
};

// The decision after `at`, in the loop order: ranks inner, then pairs, then steps. (Counted up
// rather than divided out of a decision number: on the GPU a 64-bit division is a long sequence of
// instructions, and the walk makes ~98 000 decisions an epoch.)
KHSGD_HOST_DEVICE inline PairAt next_pair_at(const PairLayout& layout, PairAt at) {
  if (++at.rank == layout.ranks) {
    at.rank = 0;
    if (++at.pair == layout.microbatch / 2) {
      at.pair = 0;
      ++at.step;
    }
  }
  return at;
}

// Where the decision's first row starts in the walk's gradients [steps, ranks, microbatch, D];
// the second row follows it.
KHSGD_HOST_DEVICE inline int64_t pair_rows_offset(const PairLayout& layout, const PairAt& at) {
  return ((at.step * layout.ranks + at.rank) * layout.microbatch + 2 * at.pair) * layout.D;
}

// The two examples (indices into the rank's shard) the decision places.
struct PairExamples {
  int64_t first = 0;
  int64_t second = 0;
};

KHSGD_HOST_DEVICE inline PairExamples pair_examples(const PairLayout& layout, const int64_t* orders,
                                                    int64_t first_step, const PairAt& at) {
  const int64_t* pair = orders + at.rank * layout.shard_rows +
                        (first_step + at.step) * layout.microbatch + 2 * at.pair;
  return {pair[0], pair[1]};
}

// What carries from one decision to the next (and, on the GPU, from one kernel to the next).
struct PairCursor {
  double tau = 0.0;      // KH-SGD's "two sigma squared", 0 at each epoch start
  int64_t decision = 0;  // into the rule's tables: per epoch for KH-SGD, across the run for SBW
  int64_t left = 0;      // the next free slot of next_orders from the front
  int64_t right = 0;     // ... and from the back
};

// The cursor sort() starts an epoch with: SBW's decision counter runs on across the whole run.
KHSGD_HOST_DEVICE inline PairCursor epoch_start_cursor(PairRule rule, const PairCursor& before,
                                                       int64_t shard_rows) {
  PairCursor cursor;
  cursor.decision = rule == PairRule::SBW ? before.decision : 0;
  cursor.right = shard_rows - 1;
  return cursor;
}

// A sign rule and the tables it reads, one entry per decision (pointers into the memory of the
// device the walk runs on).
struct PairRuleTables {
  PairRule rule = PairRule::CDGraB;
  const float* thresholds = nullptr;   // SBW: scale (1 - 2u), m n E / 2 of them
  const float* log_penalty = nullptr;  // KH-SGD: [T]
  const float* uniforms = nullptr;     // KH-SGD: [T]
};

// One decision's entries: SBW's threshold, or KH-SGD's log-penalty and uniform.
struct RuleEntry {
  float first = 0.0f;
  float second = 0.0f;
};

KHSGD_HOST_DEVICE inline RuleEntry rule_entry(const PairRuleTables& tables, int64_t decision) {
  RuleEntry entry;
  if (tables.rule == PairRule::SBW) entry.first = tables.thresholds[decision];
  if (tables.rule == PairRule::KHSGD) {
    entry.first = tables.log_penalty[decision];
    entry.second = tables.uniforms[decision];
  }
  return entry;
}

// Only KH-SGD reads |Delta|^2.
KHSGD_HOST_DEVICE inline bool rule_needs_bsq(const PairRuleTables& tables) {
  return tables.rule == PairRule::KHSGD;
}

// The sign of one decision (true = "+"). <s, Delta> and |Delta|^2 come summed in double and are
// rounded to float32 here, the precision the reference holds them in.
KHSGD_HOST_DEVICE inline bool rule_adds(const PairRuleTables& tables, const RuleEntry& entry,
                                        double inner, double bsq, double* tau) {
  switch (tables.rule) {
    case PairRule::SBW: return sbw_adds(static_cast<float>(inner), entry.first);
    case PairRule::KHSGD:
      return khsgd_adds(static_cast<float>(bsq), entry.first, entry.second,
                        static_cast<float>(inner), tau);
    default: return cdgrab_adds(static_cast<float>(inner));
  }
}

// <s, Delta> and |Delta|^2 of one pair, over all D components.
struct PairDots {
  double inner;
  double bsq;
};

// One component's share of them: the float32 products summed in double, as the reference's
// float32 tensors are summed to within an ulp whatever the order.
KHSGD_HOST_DEVICE inline void add_component(PairDots* dots, float sum, float delta, bool with_bsq) {
  dots->inner += static_cast<double>(sum) * delta;
  if (with_bsq) {
    const float square = delta * delta;
    dots->bsq += square;
  }
}

// s_c after the decision: s += Delta for "+", s -= Delta for "-".
KHSGD_HOST_DEVICE inline float moved_sum(float sum, float delta, bool plus) {
  return plus ? sum + delta : sum - delta;
}

// The decisions of `steps` steps from `first_step` on: gradients [steps, ranks, microbatch, D]
// (in `rows`), orders and next_orders [ranks, m], the cursor updated in place.
//
// The Rows contract (HostPairRows below; the kernels' in src/cuda/pair_rows.cuh):
// clang-format off
//   void     fetch(const PairAt&)  start reading that decision's two rows (a slot apart from the
//                                  current ones)
//   void     advance()             the fetched rows become the current ones
//   PairDots dots(bool bsq)        <s, Delta> of the current pair, and |Delta|^2 only when asked
//   void     move_sum(bool plus)   s += Delta (plus) or s -= Delta of the current pair
//   bool     writes_orders()       whether this thread writes next_orders (one lane of a warp does)
// clang-format on
KHSGD_EXEC_CHECK_DISABLE
template <class Rows>
KHSGD_HOST_DEVICE void walk_pairs(Rows& rows, const PairRuleTables& tables,
                                  const PairLayout& layout, int64_t first_step, int64_t steps,
                                  const int64_t* orders, int64_t* next_orders, PairCursor* cursor) {
  const int64_t total = steps * decisions_per_step(layout);
  if (total <= 0) return;
  const bool bsq = rule_needs_bsq(tables);
  PairCursor c = *cursor;
  PairAt at{0, 0, 0};
  rows.fetch(at);
  rows.advance();
  RuleEntry entry = rule_entry(tables, c.decision);
  PairExamples examples = pair_examples(layout, orders, first_step, at);
  for (int64_t q = 0; q < total; ++q) {
    // The next decision's rows, table entry and examples do not depend on this decision: asked
    // for first, their loads overlap this decision's dependent chain on the GPU.
    const PairAt next_at = next_pair_at(layout, at);
    RuleEntry next_entry;
    PairExamples next_examples;
    if (q + 1 < total) {
      rows.fetch(next_at);
      next_entry = rule_entry(tables, c.decision + 1);
      next_examples = pair_examples(layout, orders, first_step, next_at);
    }
    const PairDots dots = rows.dots(bsq);
    const bool plus = rule_adds(tables, entry, dots.inner, dots.bsq, &c.tau);
    ++c.decision;  // counted for every rule; only SBW's and KH-SGD's tables are read with it
    rows.move_sum(plus);
    if (rows.writes_orders()) {
      int64_t* next_row = next_orders + at.rank * layout.shard_rows;
      next_row[plus ? c.left : c.right] = examples.first;
      next_row[plus ? c.right : c.left] = examples.second;
    }
    if (at.rank == layout.ranks - 1) {  // every rank has placed its pair
      ++c.left;
      --c.right;
    }
    rows.advance();
    entry = next_entry;
    examples = next_examples;
    at = next_at;
  }
  *cursor = c;
}

// The rows in host memory (the CPU sorters): one core, the components summed in order.
class HostPairRows {
 public:
  // sum: s [D], updated in place; delta: scratch [D].
  HostPairRows(const float* gradients, const PairLayout& layout, float* sum, float* delta)
      : gradients_(gradients), layout_(layout), sum_(sum), delta_(delta) {}

  void fetch(const PairAt& at) { next_ = gradients_ + pair_rows_offset(layout_, at); }
  void advance() { first_ = next_; }
  PairDots dots(bool with_bsq) {
    const int64_t D = layout_.D;
    const float* second = first_ + D;
    PairDots dots{0.0, 0.0};
    for (int64_t c = 0; c < D; ++c) {
      delta_[c] = second[c] - first_[c];
      add_component(&dots, sum_[c], delta_[c], with_bsq);
    }
    return dots;
  }
  void move_sum(bool plus) {
    for (int64_t c = 0; c < layout_.D; ++c) sum_[c] = moved_sum(sum_[c], delta_[c], plus);
  }
  static bool writes_orders() { return true; }

 private:
  const float* gradients_;
  PairLayout layout_;
  float* sum_;
  float* delta_;
  const float* first_ = nullptr;
  const float* next_ = nullptr;
};

}  // namespace khsgd
