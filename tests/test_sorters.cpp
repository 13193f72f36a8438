// Sorters on small inputs whose orders were worked out by hand, with scripted random draws.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <limits>
#include <set>
#include <stdexcept>
#include <tuple>

#include "khsgd/base/errors.hpp"
#include "khsgd/sorting/pair_rules.hpp"
#include "khsgd/sorting/sorter_registry.hpp"
#include "khsgd/sorting/state_io.hpp"
#include "khsgd/torch/cpu_generator.hpp"
#include "plain_draws.hpp"
#include "sorter_shape.hpp"

using namespace khsgd;
using khsgd_test::shape_of;

namespace {

// DeviceOps whose draws are written into the test; records what was asked for.
class ScriptedOps final : public DeviceOps {
 public:
  std::deque<std::vector<int64_t>> perms;
  std::deque<std::vector<float>> uniforms;
  std::vector<std::tuple<int64_t, double, double>> uniform_requests;
  std::vector<std::pair<double, int64_t>> log_requests;

  std::vector<int64_t> randperm(int64_t m) override {
    if (perms.empty()) throw std::logic_error("unscripted randperm");
    auto p = perms.front();
    perms.pop_front();
    EXPECT_EQ(static_cast<int64_t>(p.size()), m);
    return p;
  }
  std::vector<float> uniform(int64_t count, double from, double to) override {
    uniform_requests.emplace_back(count, from, to);
    if (uniforms.empty()) throw std::logic_error("unscripted uniform");
    auto u = uniforms.front();
    uniforms.pop_front();
    EXPECT_EQ(static_cast<int64_t>(u.size()), count);
    return u;
  }
  std::vector<float> log_of_multiples(double constant, int64_t count) override {
    log_requests.emplace_back(constant, count);
    std::vector<float> out;
    for (int64_t t = 1; t <= count; ++t) out.push_back(std::log(static_cast<float>(constant) * t));
    return out;
  }
};

// One step's G for one rank and microbatch 2: the first example's gradient is 0, the second's
// is delta, so the pair difference is exactly delta.
std::vector<float> pair_with_difference(std::vector<float> delta) {
  std::vector<float> G(delta.size(), 0.0f);
  G.insert(G.end(), delta.begin(), delta.end());
  return G;
}

using Order = std::vector<int64_t>;

}  // namespace

TEST(DRR, ReturnsAFreshPermutationEveryEpochAndIgnoresGradients) {
  ScriptedOps ops;
  ops.perms = {{2, 0, 3, 1}, {1, 3, 0, 2}};
  auto sorter = make_sorter("D-RR", shape_of(1, 4, 2, 3), ops);
  EXPECT_EQ(sorter->needs(), GradientNeed::None);
  EXPECT_EQ(sorter->sort(), (Order{2, 0, 3, 1}));
  EXPECT_EQ(sorter->sort(), (Order{1, 3, 0, 2}));
}

std::vector<float> no_log_table(double, int64_t) { return {}; }

// D-RR drawing beside the steps (draw_beside): the orders read as the step loop reads them, a
// step's rows at a time after wait_for_order(), are the permutations drawn whole, epoch after
// epoch (several blocks of the draw's 512 items), and the generator ends where it would.
TEST(DRR, DrawnBesideTheStepsGivesTheSameOrdersAndGenerator) {
  const int64_t m = 5000, step_items = 16;
  CpuGenerator beside_gen(11), whole_gen(11);
  const auto beside_ops = make_cpu_ops(beside_gen, &no_log_table);
  const auto whole_ops = make_cpu_ops(whole_gen, &no_log_table);
  auto beside = make_sorter("D-RR", shape_of(1, m, 2, 3), *beside_ops);
  auto whole = make_sorter("D-RR", shape_of(1, m, 2, 3), *whole_ops);
  beside->draw_beside(true);
  for (int epoch = 0; epoch < 3; ++epoch) {
    const Order& expected = whole->sort();
    const Order& order = beside->sort();
    const int64_t* rows = beside->order_of(0);
    for (int64_t first = 0; first < m; first += step_items) {
      beside->wait_for_order(first + step_items);
      for (int64_t i = first; i < std::min(m, first + step_items); ++i)
        ASSERT_EQ(rows[i], expected[i]) << "epoch " << epoch << ", item " << i;
    }
    beside->wait_for_order(m);
    EXPECT_EQ(order, expected) << "epoch " << epoch;
    EXPECT_EQ(beside_gen.state(), whole_gen.state()) << "epoch " << epoch;
  }
}

TEST(DRR, AFailedDrawBesideTheStepsIsRethrownAtTheFirstWait) {
  ScriptedOps ops;  // no permutation scripted: its randperm throws, on the draw's thread
  auto sorter = make_sorter("D-RR", shape_of(1, 4, 2, 3), ops);
  sorter->draw_beside(true);
  sorter->sort();
  // Before any step reads the items it did not draw, not only when the whole order is awaited.
  EXPECT_THROW(sorter->wait_for_order(2), std::logic_error);
  sorter->wait_for_order(4);  // reported once
  // The next epoch draws afresh, into the same storage (the default randperm_into copies).
  ops.perms = {{3, 2, 1, 0}};
  const Order& order = sorter->sort();
  const int64_t* rows = sorter->order_of(0);
  sorter->wait_for_order(4);
  EXPECT_EQ(order, (Order{3, 2, 1, 0}));
  EXPECT_EQ(sorter->order_of(0), rows);
}

TEST(CDGraB, FirstEpochIsNaturalOrderThenGreedySigns) {
  ScriptedOps ops;
  auto sorter = make_sorter("CD-GraB", shape_of(1, 4, 2, 2), ops);
  EXPECT_EQ(sorter->needs(), GradientNeed::AllRanks);
  EXPECT_EQ(sorter->sort(), (Order{0, 1, 2, 3}));
  // Step 0 (examples 0, 1): s = 0, <s, d> = 0 <= 0: "+", 0 to the front, 1 to the back; s = (1, 0).
  sorter->step(pair_with_difference({1, 0}).data(), 0);
  // Step 1 (examples 2, 3): <s, (2, 1)> = 2 > 0: "-", 3 to the front, 2 to the back.
  sorter->step(pair_with_difference({2, 1}).data(), 1);
  EXPECT_EQ(sorter->sort(), (Order{0, 3, 2, 1}));
  // Epoch 2 pairs (0, 3) and (2, 1). s restarts at 0: "+"; s = (-1, -1), then <s, (1, 1)> = -2:
  // "+".
  sorter->step(pair_with_difference({-1, -1}).data(), 0);
  sorter->step(pair_with_difference({1, 1}).data(), 1);
  EXPECT_EQ(sorter->sort(), (Order{0, 2, 1, 3}));
}

TEST(CDGraB, RanksShareTheRunningSumPairByPair) {
  // n = 2, m = 4, microbatch 2, D = 1; the pair loop is outer, the rank loop inner.
  auto run = [](int64_t rank) {
    ScriptedOps ops;
    auto sorter = make_sorter("CD-GraB", shape_of(2, 4, 2, 1, 3, rank), ops);
    sorter->sort();
    // Step 0: rank 0 d = 1: <0, 1> = 0 -> "+", s = 1. Rank 1 d = 1: <1, 1> = 1 > 0 -> "-", s = 0.
    const std::vector<float> step0 = {0, 1, 0, 1};
    sorter->step(step0.data(), 0);
    // Step 1: rank 0 d = -1: <0, -1> = 0 -> "+", s = -1. Rank 1 d = -1: <-1, -1> = 1 -> "-", s = 0.
    const std::vector<float> step1 = {0, -1, 0, -1};
    sorter->step(step1.data(), 1);
    return sorter->sort();
  };
  // Rank 0: "+" puts (0, 1) at (left 0, right 3), then (2, 3) at (1, 2).
  EXPECT_EQ(run(0), (Order{0, 2, 3, 1}));
  // Rank 1: "-" puts 0 at right 3 and 1 at left 0, then 2 at right 2 and 3 at left 1.
  EXPECT_EQ(run(1), (Order{1, 3, 2, 0}));
}

TEST(SBW, ThresholdsAreScaledUniformsAndTheCounterRunsAcrossEpochs) {
  ScriptedOps ops;
  // m n E / 2 = 4 * 1 * 2 / 2 = 4 thresholds scale * (1 - 2u): +scale, -scale, 0, -scale.
  ops.uniforms = {{0.0f, 1.0f, 0.5f, 1.0f}};
  auto sorter = make_sorter("SBW", shape_of(1, 4, 2, 1, /*epochs=*/2), ops);
  ASSERT_EQ(ops.uniform_requests.size(), 1u);
  EXPECT_EQ(ops.uniform_requests[0], std::make_tuple(int64_t{4}, 0.0, 1.0));
  EXPECT_EQ(sorter->sort(), (Order{0, 1, 2, 3}));
  sorter->step(pair_with_difference({1}).data(), 0);  // 0 <= +scale: "+"
  sorter->step(pair_with_difference({1}).data(), 1);  // 1 <= -scale fails: "-"
  EXPECT_EQ(sorter->sort(), (Order{0, 3, 2, 1}));
  sorter->step(pair_with_difference({1}).data(), 0);  // decision 3: 0 <= 0: "+"
  sorter->step(pair_with_difference({1}).data(), 1);  // decision 4: 1 <= -scale fails: "-"
  EXPECT_EQ(sorter->sort(), (Order{0, 1, 2, 3}));
}

// The epoch after the last may be sorted (it reads the last walk's order) but not walked: its
// decisions would read past the thresholds drawn for `epochs` epochs.
TEST(SBW, AnEpochPastTheLastIsNotWalked) {
  ScriptedOps ops;
  ops.uniforms = {{0.0f, 1.0f}};
  auto sorter = make_sorter("SBW", shape_of(1, 4, 2, 1, /*epochs=*/1), ops);
  sorter->sort();
  sorter->step(pair_with_difference({1}).data(), 0);
  sorter->step(pair_with_difference({1}).data(), 1);
  EXPECT_EQ(sorter->sort(), (Order{0, 3, 2, 1}));
  EXPECT_THROW(sorter->step(pair_with_difference({1}).data(), 0), UserError);
}

// A checkpoint's epoch count must fit the run, and SBW's counter the epoch count: n m / 2 = 2
// decisions an epoch, so after e epochs it is in [2 (e - 1), 2 e].
TEST(SBW, LoadRefusesCountsThatDoNotFit) {
  auto state_with = [](int64_t sort_calls, int64_t decision) {
    StateWriter out;
    out.i64(sort_calls);
    out.indices({0, 1, 2, 3});
    out.i64(decision);
    return out.data();
  };
  auto load = [](const std::vector<uint8_t>& data) {
    ScriptedOps ops;
    ops.uniforms = {{0.0f, 0.0f, 0.0f, 0.0f}};
    auto sorter = make_sorter("SBW", shape_of(1, 4, 2, 1, /*epochs=*/2), ops);
    StateReader in(data, "test");
    sorter->load_state(in);
  };
  EXPECT_NO_THROW(load(state_with(0, 0)));
  EXPECT_NO_THROW(load(state_with(1, 2)));
  EXPECT_NO_THROW(load(state_with(2, 4)));
  EXPECT_THROW(load(state_with(3, 4)), UserError);  // more epochs than the run has
  EXPECT_THROW(load(state_with(0, 2)), UserError);  // the counter ahead of the epochs
  EXPECT_THROW(load(state_with(2, 0)), UserError);  // the epochs ahead of the counter
}

TEST(SBW, ScaleMatchesTheReferenceFormula) {
  // A pair whose <s, d> sits just below and just above scale * 0.5 (u = 0.25) tells the scale.
  const double scale = std::sqrt(20875.0) * 30 * std::log(4.0 * 1 * 2 / 0.5 / 2);
  for (const double offset : {-1.0, 1.0}) {
    ScriptedOps ops;
    ops.uniforms = {{0.0f, 0.25f, 0.0f, 0.0f}};
    auto sorter = make_sorter("SBW", shape_of(1, 4, 2, 1, 2), ops);
    sorter->sort();
    const float big = static_cast<float>(std::sqrt(scale * 0.5 + offset));
    sorter->step(pair_with_difference({big}).data(), 0);  // "+": s = big
    sorter->step(pair_with_difference({big}).data(), 1);  // <s, d> = big^2 vs scale / 2
    const Order expected = offset < 0 ? Order{0, 2, 3, 1} : Order{0, 3, 2, 1};
    EXPECT_EQ(sorter->sort(), expected) << "offset " << offset;
  }
}

TEST(KHSGDRule, SmallRatioResetsTauToTwiceBsq) {
  double tau = 0.0;                                    // ratio = 0 <= 1
  EXPECT_TRUE(khsgd_adds(1.0, 2.0, 0.3, -0.2, &tau));  // inner <= 0, u >= 0
  EXPECT_DOUBLE_EQ(tau, 2.0);
  tau = 0.0;
  EXPECT_FALSE(khsgd_adds(1.0, 2.0, -0.5, -0.4, &tau));  // -0.4 <= -0.5 * 1 fails
  tau = 0.0;
  EXPECT_TRUE(khsgd_adds(1.0, 2.0, -0.5, -0.6, &tau));  // -0.6 <= -0.5
  tau = 0.0;
  EXPECT_FALSE(khsgd_adds(1.0, 2.0, 0.0, 0.1, &tau));  // inner > 0, u <= 0
  tau = 0.0;
  EXPECT_TRUE(khsgd_adds(1.0, 2.0, 0.5, 0.4, &tau));  // 0.4 <= 0.5
  tau = 0.0;
  EXPECT_FALSE(khsgd_adds(1.0, 2.0, 0.5, 0.6, &tau));  // 0.6 <= 0.5 fails
  tau = 0.25;                                          // ratio = 0.25 * 2 / 1 = 0.5 <= 1 as well
  khsgd_adds(1.0, 2.0, 0.5, 0.4, &tau);
  EXPECT_DOUBLE_EQ(tau, 2.0);
}

TEST(KHSGDRule, LargeRatioUsesSqrtThresholdAndKeepsTauWhenUpdateIsNotPositive) {
  // tau 4, L 2, bsq 1: ratio 8, rho = sqrt 8; update = 2.5 - 2.83 < 0 keeps tau.
  double tau = 4.0;
  EXPECT_TRUE(khsgd_adds(1.0, 2.0, 0.5, 1.0, &tau));  // 1 <= 0.5 * 2.83 = 1.41
  EXPECT_DOUBLE_EQ(tau, 4.0);
  EXPECT_FALSE(khsgd_adds(1.0, 2.0, 0.5, 1.5, &tau));   // 1.5 > 1.41
  EXPECT_TRUE(khsgd_adds(1.0, 2.0, -0.5, -1.5, &tau));  // -1.5 <= -1.41
  EXPECT_FALSE(khsgd_adds(1.0, 2.0, -0.5, -1.0, &tau));
  EXPECT_FALSE(khsgd_adds(1.0, 2.0, -0.1, 0.5, &tau));  // inner > 0, u <= 0
  EXPECT_TRUE(khsgd_adds(1.0, 2.0, 0.1, -0.5, &tau));   // inner <= 0, u >= 0
  EXPECT_DOUBLE_EQ(tau, 4.0);
}

TEST(KHSGDRule, LargeRatioGrowsTauWhenUpdateIsPositive) {
  // tau 1, L 4, bsq 2: ratio 2, rho = sqrt 2, update = 4.5 - sqrt 2 > 0:
  // tau = 1 + 2 * 2 * update / 4 = 1 + update.
  double tau = 1.0;
  khsgd_adds(2.0, 4.0, 0.5, 0.0, &tau);
  EXPECT_DOUBLE_EQ(tau, 1.0 + (4.0 + 0.5 - std::sqrt(2.0)));
}

TEST(KHSGDRule, ZeroDifferenceKeepsTauFiniteAndFollowsIeee) {
  // bsq = 0 with tau = 0: ratio = 0 / 0 = NaN, so the sqrt branch runs and tau stays 0.
  double tau = 0.0;
  EXPECT_TRUE(khsgd_adds(0.0, 3.0, 0.2, 0.0, &tau));    // inner <= 0 and u >= 0
  EXPECT_FALSE(khsgd_adds(0.0, 3.0, -0.2, 0.0, &tau));  // 0 <= NaN is false
  EXPECT_EQ(tau, 0.0);
  // bsq = 0 with tau > 0: ratio = +inf, update = -inf, threshold u * inf * 0 = NaN.
  tau = 3.0;
  EXPECT_TRUE(khsgd_adds(0.0, 3.0, 0.7, 0.0, &tau));
  EXPECT_FALSE(khsgd_adds(0.0, 3.0, -0.7, 0.0, &tau));
  EXPECT_FALSE(khsgd_adds(0.0, 3.0, 0.7, 1e-30, &tau));  // inner > 0, u > 0: 1e-30 <= NaN fails
  EXPECT_EQ(tau, 3.0);
  EXPECT_TRUE(std::isfinite(tau));
}

TEST(KHSGD, DrawsTablesAtConstructionAndRedrawsFromTheSecondEpoch) {
  ScriptedOps ops;
  ops.uniforms = {{0.5f, 0.5f}, {-0.25f, -0.25f}, {0.0f, 0.0f}};
  // n = 1, m = 4: T = 2 decisions per epoch; E = 2.
  auto sorter = make_sorter("KH-SGD", shape_of(1, 4, 2, 2, /*epochs=*/2), ops);
  ASSERT_EQ(ops.log_requests.size(), 1u);
  const double constant = 8 * (std::log(2.0) + 1) * (std::log(2.0) + 1);
  EXPECT_DOUBLE_EQ(ops.log_requests[0].first, constant);
  EXPECT_EQ(ops.log_requests[0].second, 2);
  ASSERT_EQ(ops.uniform_requests.size(), 1u);
  EXPECT_EQ(ops.uniform_requests[0], std::make_tuple(int64_t{2}, -1.0, 1.0));

  EXPECT_EQ(sorter->sort(), (Order{0, 1, 2, 3}));
  EXPECT_EQ(ops.uniform_requests.size(), 1u);  // epoch 1 uses the construction draw
  // Epoch 1, U = 0.5, 0.5. Step 0: tau = 0 -> tau = 2 bsq = 2; inner 0, U >= 0: "+".
  sorter->step(pair_with_difference({1, 0}).data(), 0);
  // Step 1: inner 1 > 0; ratio = 2 L / 1 with L = ln(2 C) = 3.83: 1 <= 0.5 sqrt(7.65): "+".
  sorter->step(pair_with_difference({1, 0}).data(), 1);
  EXPECT_EQ(sorter->sort(), (Order{0, 2, 3, 1}));
  EXPECT_EQ(ops.uniform_requests.size(), 2u);  // redrawn for epoch 2

  // Epoch 2, U = -0.25. Step 0 (examples 0, 2): inner 0, 0 <= -0.25 fails: "-"; s = (-1, 0).
  sorter->step(pair_with_difference({1, 0}).data(), 0);
  // Step 1 (examples 3, 1): inner = -0.72, bsq = 1.000036, tau = 2. The threshold is
  // -0.25 sqrt(2 L bsq): with L = 3.83 (no epoch penalty) it would be -0.69 and give "+"; with
  // L + ln 2 = 4.52 it is -0.75, so "-" shows the penalty grew by ln(1 + 1/1).
  sorter->step(pair_with_difference({0.72f, 0.694f}).data(), 1);
  EXPECT_EQ(sorter->sort(), (Order{2, 1, 3, 0}));
  EXPECT_EQ(ops.uniform_requests.size(), 3u);
}

TEST(KHSGD, OneDecisionPerPairAndRankWithSeveralRanks) {
  ScriptedOps ops;
  ops.uniforms = {{1, 1, 1, 1}, {1, 1, 1, 1}};  // T = n m / 2 = 2 * 4 / 2
  auto sorter = make_sorter("KH-SGD", shape_of(2, 4, 2, 1, 1, /*rank=*/1), ops);
  EXPECT_EQ(ops.log_requests[0].second, 4);
  EXPECT_EQ(std::get<0>(ops.uniform_requests[0]), 4);
  sorter->sort();
  // All four decisions have U = 1 >= 0 and inner <= 0 or a loose threshold: every pair "+".
  const std::vector<float> step0 = {0, 1, 0, -1};
  const std::vector<float> step1 = {0, 1, 0, -1};
  sorter->step(step0.data(), 0);
  sorter->step(step1.data(), 1);
  EXPECT_EQ(sorter->sort(), (Order{0, 2, 3, 1}));
}

TEST(Sorters, UnknownNameAndOddMicrobatchAreRejected) {
  ScriptedOps ops;
  EXPECT_ANY_THROW(make_sorter("no-such-sorter", shape_of(1, 4, 2, 1), ops));
  EXPECT_ANY_THROW(make_sorter("CD-GraB", shape_of(1, 4, 3, 1), ops));
}

namespace {

// Draws of the right sizes, all zero: enough to build any sorter.
using ZeroOps = khsgd_test::PlainDraws;

}  // namespace

TEST(SorterRegistry, EveryEntryBuildsASorterThatNeedsWhatItsEntrySays) {
  std::set<std::string> names;
  for (const SorterInfo& info : sorter_registry()) {
    SCOPED_TRACE(info.name);
    EXPECT_TRUE(names.insert(info.name).second) << "two entries share a name";
    // --list-sorters prints NAME<TAB>description<TAB>group a line: no tab or newline inside.
    EXPECT_EQ(std::string(info.name).find_first_of("\t\n /"), std::string::npos);
    EXPECT_FALSE(std::string(info.description).empty());
    EXPECT_EQ(std::string(info.description).find_first_of("\t\n"), std::string::npos);
    ASSERT_NE(info.host, nullptr);
    ZeroOps ops;
    auto sorter = make_sorter(info.name, shape_of(2, 8, 4, 3, 2, 1), ops);
    EXPECT_EQ(sorter->needs(), info.needs);
    EXPECT_EQ(sorter->sort().size(), 8u);
  }
  EXPECT_EQ(sorter_names().size(), names.size());
}

TEST(SorterRegistry, ListingIsOneTabSeparatedLinePerSorter) {
  const std::string all = sorter_list(/*cuda_only=*/false);
  std::string expected;
  for (const SorterInfo& info : sorter_registry())
    expected += std::string(info.name) + "\t" + info.description + "\t" +
                (info.paper ? "paper" : "baseline") + "\n";
  EXPECT_EQ(all, expected);
  EXPECT_EQ(all.rfind("D-RR\t", 0), 0u);
  // With cuda_only: the entries that have a CUDA factory, the paper's four among them.
  // (Looked for at a line's start: "GraB\t" is also the end of "CD-GraB\t".)
  const std::string cuda = "\n" + sorter_list(/*cuda_only=*/true);
  auto listed = [&](const std::string& name) {
    return cuda.find("\n" + name + "\t") != std::string::npos;
  };
  for (const char* name : {"D-RR", "CD-GraB", "SBW", "KH-SGD"}) EXPECT_TRUE(listed(name)) << name;
  for (const SorterInfo& info : sorter_registry())
    EXPECT_EQ(listed(info.name), info.cuda != nullptr) << info.name;
}

TEST(SorterRegistry, OnlyPairSortersNeedAnEvenMicrobatch) {
  for (const SorterInfo& info : sorter_registry()) {
    SCOPED_TRACE(info.name);
    EXPECT_TRUE(shape_problem(info, 4, 8).empty());
    EXPECT_EQ(shape_problem(info, 3, 6).empty(), !info.even_microbatch);
  }
  EXPECT_TRUE(sorter_info("KH-SGD").even_microbatch);
  EXPECT_FALSE(sorter_info("D-RR").even_microbatch);
  EXPECT_THROW(sorter_info("kh-sgd"), UserError);  // names are case-sensitive
}
