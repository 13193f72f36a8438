// The baselines beside the paper's sorters: GraB and I-B against the reference's GraB orders on
// fixed gradients (tests/data/golden/sorters), SO and fixed on hand-checked cases.
#include <gtest/gtest.h>

#include <cstdio>
#include <deque>
#include <fstream>
#include <stdexcept>

#include "helpers.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/sorting/sorter_registry.hpp"
#include "sorter_shape.hpp"

using namespace khsgd;
using khsgd_test::read_orders;
using khsgd_test::shape_of;
using khsgd_test::test_data;

namespace {

using Order = std::vector<int64_t>;

// Permutations written into the test; any other draw fails the test.
class ScriptedPerms final : public DeviceOps {
 public:
  std::deque<Order> perms;
  int randperm_calls = 0;
  Order randperm(int64_t m) override {
    ++randperm_calls;
    if (perms.empty()) throw std::logic_error("unscripted randperm");
    Order p = perms.front();
    perms.pop_front();
    EXPECT_EQ(static_cast<int64_t>(p.size()), m);
    return p;
  }
  std::vector<float> uniform(int64_t, double, double) override {
    throw std::logic_error("unscripted uniform");
  }
  std::vector<float> log_of_multiples(double, int64_t) override {
    throw std::logic_error("unscripted log_of_multiples");
  }
};

// One case of the reference's GraB fed fixed gradients (tests/data/golden/sorters/README.txt).
struct GoldenCase {
  std::string name;
  int64_t m, mb, D, epochs;
  std::vector<float> grads;   // [epochs, m / mb, mb, D]
  std::vector<Order> orders;  // line e: the order sort() returned at the start of epoch e + 1

  GoldenCase(std::string case_name, int64_t m_, int64_t mb_, int64_t D_, int64_t epochs_)
      : name(std::move(case_name)), m(m_), mb(mb_), D(D_), epochs(epochs_) {
    const std::string stem = test_data("golden/sorters/" + name);
    grads.resize(epochs * m * D);
    std::ifstream in(stem + ".grads.f32", std::ios::binary);
    in.read(reinterpret_cast<char*>(grads.data()),
            static_cast<std::streamsize>(grads.size() * sizeof(float)));
    if (!in || in.peek() != EOF)
      throw std::runtime_error(stem + ".grads.f32: not the size expected");
    orders = read_orders(stem + ".orders.csv");
  }
  const float* epoch(int64_t e) const { return grads.data() + e * m * D; }
  const float* step(int64_t e, int64_t k) const { return epoch(e) + k * mb * D; }
};

const GoldenCase& case_a() {
  static const GoldenCase c("GraB-m64-mb16-d21-e4", 64, 16, 21, 4);
  return c;
}
const GoldenCase& case_b() {
  static const GoldenCase c("GraB-m32-mb8-d5-e5", 32, 8, 5, 5);
  return c;
}

}  // namespace

TEST(GraB, ReproducesTheReferenceOrdersStepByStep) {
  for (const GoldenCase* c : {&case_a(), &case_b()}) {
    SCOPED_TRACE(c->name);
    ASSERT_EQ(c->orders.size(), static_cast<size_t>(c->epochs));
    ScriptedPerms ops;
    auto sorter = make_sorter("GraB", shape_of(1, c->m, c->mb, c->D), ops);
    EXPECT_EQ(sorter->needs(), GradientNeed::AllRanks);
    for (int64_t e = 0; e < c->epochs; ++e) {
      EXPECT_EQ(sorter->sort(), c->orders[e]) << "epoch " << e + 1;
      for (int64_t k = 0; k < c->m / c->mb; ++k) sorter->step(c->step(e, k), k);
    }
  }
}

TEST(GraB, AWholeEpochAtOnceMakesTheSameDecisions) {
  const GoldenCase& c = case_a();
  ScriptedPerms ops;
  auto sorter = make_sorter("GraB", shape_of(1, c.m, c.mb, c.D), ops);
  for (int64_t e = 0; e < c.epochs; ++e) {
    EXPECT_EQ(sorter->sort(), c.orders[e]) << "epoch " << e + 1;
    sorter->balance(c.epoch(e), 0, c.m / c.mb);
  }
}

TEST(GraB, ACheckpointBetweenEpochsResumesTheSameOrders) {
  const GoldenCase& c = case_b();
  for (int64_t stop = 1; stop < c.epochs; ++stop) {
    SCOPED_TRACE("stopped after epoch " + std::to_string(stop));
    ScriptedPerms ops;
    auto first = make_sorter("GraB", shape_of(1, c.m, c.mb, c.D), ops);
    for (int64_t e = 0; e < stop; ++e) {
      first->sort();
      first->balance(c.epoch(e), 0, c.m / c.mb);
    }
    StateWriter out;
    first->save_state(out);
    auto resumed = make_sorter("GraB", shape_of(1, c.m, c.mb, c.D), ops);
    StateReader in(out.data(), "test");
    resumed->load_state(in);
    EXPECT_TRUE(in.at_end());
    for (int64_t e = stop; e < c.epochs; ++e) {
      EXPECT_EQ(resumed->sort(), c.orders[e]) << "epoch " << e + 1;
      resumed->balance(c.epoch(e), 0, c.m / c.mb);
    }
  }
}

TEST(GraB, SeveralRanksShareOneWalkAndOneMean) {
  // n = 2, m = 2, microbatch 1, D = 1; positions outer, ranks inner; epoch 1's mean is 0.
  auto run = [](int64_t rank) {
    ScriptedPerms ops;
    auto sorter = make_sorter("GraB", shape_of(2, 2, 1, 1, /*epochs=*/1, rank), ops);
    EXPECT_EQ(sorter->sort(), (Order{0, 1}));
    // Step 0: rank 0 g = 1: <0, 1> = 0 -> front, s = 1. Rank 1 g = 1: <1, 1> > 0 -> back, s = 0
    // (a walk of its own would have put it in front).
    sorter->step(std::vector<float>{1, 1}.data(), 0);
    // Step 1: rank 0 g = -1: <0, -1> = 0 -> front, s = -1. Rank 1 g = 2: -2 <= 0 -> front, s = 1.
    sorter->step(std::vector<float>{-1, 2}.data(), 1);
    const Order second = sorter->sort();
    // Epoch 2 subtracts the mean over both ranks' examples, (1 + 1 - 1 + 2) / 4 = 0.75 (rank 1's
    // own would be 1.5). Step 0: rank 0's example 0 (g = -1): d = -1.75, front, s = -1.75; rank 1's
    // example 1 (g = 1): d = 0.25, <s, d> < 0: front (d = -0.5 with its own mean: back), s = -1.5.
    sorter->step(std::vector<float>{-1, 1}.data(), 0);
    // Step 1: rank 0's example 1 (g = -1): d = -1.75, <s, d> > 0: back, s = 0.25; rank 1's
    // example 0 (g = -1): d = -1.75, <s, d> < 0: front.
    sorter->step(std::vector<float>{-1, -1}.data(), 1);
    return std::make_pair(second, sorter->sort());
  };
  EXPECT_EQ(run(0).first, (Order{0, 1}));
  EXPECT_EQ(run(1).first, (Order{1, 0}));
  EXPECT_EQ(run(0).second, (Order{0, 1}));
  EXPECT_EQ(run(1).second, (Order{1, 0}));
}

TEST(GraB, RunsOnTheCpuOnlyAndTakesAnOddMicrobatch) {
  ScriptedPerms ops;
  SorterShape gpu = shape_of(1, 6, 3, 2);
  gpu.device = Device::Cuda;
  try {
    make_sorter("GraB", gpu, ops);
    FAIL() << "GraB has no GPU implementation";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("runs on the CPU only"), std::string::npos) << e.what();
  }
  EXPECT_EQ(sorter_info("GraB").cuda, nullptr);
  // Mean balancing places single examples: an odd microbatch is fine.
  EXPECT_EQ(make_sorter("GraB", shape_of(1, 6, 3, 2), ops)->sort(), (Order{0, 1, 2, 3, 4, 5}));
}

TEST(IndependentBalance, EachRankIsTheReferenceGraBOnItsOwnGradients) {
  // Two ranks, each its own process: rank r's sorter is handed rank r's gradients alone, one of
  // the golden sets each, and returns that set's GraB orders (a rank's walk reads nothing of the
  // other's). The two sets differ in shape, so each rank's sorter is built with its own.
  const GoldenCase* fed[2] = {&case_a(), &case_b()};
  for (int64_t rank = 0; rank < 2; ++rank) {
    const GoldenCase& c = *fed[rank];
    SCOPED_TRACE("rank " + std::to_string(rank) + ": " + c.name);
    ScriptedPerms ops;
    auto sorter = make_sorter("I-B", shape_of(2, c.m, c.mb, c.D, /*epochs=*/1, rank), ops);
    EXPECT_EQ(sorter->needs(), GradientNeed::OwnRank);
    for (int64_t e = 0; e < c.epochs; ++e) {
      EXPECT_EQ(sorter->sort(), c.orders[e]) << "epoch " << e + 1;
      for (int64_t k = 0; k < c.m / c.mb; ++k) sorter->step(c.step(e, k), k);
    }
  }
}

TEST(IndependentBalance, OneSorterForBothWorkersKeepsTheirWalksApart) {
  // --in_process: one sorter is handed both workers' rows, [step, worker, microbatch, D]. Worker 0
  // gets golden set B, worker 1 all-zero gradients, whose GraB order stays natural (every d = 0,
  // every <s, d> = 0: front). A shared sum or a shared mean would change worker 0's decisions
  // (the mean over both would be half of its own); worker 1 reading worker 0's rows would leave
  // the natural order.
  const GoldenCase& c = case_b();
  SorterShape shape = shape_of(2, c.m, c.mb, c.D);
  shape.every_rank_here = true;
  ScriptedPerms ops;
  auto sorter = make_sorter("I-B", shape, ops);
  Order natural(c.m);
  for (int64_t i = 0; i < c.m; ++i) natural[i] = i;
  const int64_t steps = c.m / c.mb, rows = c.mb * c.D;
  for (int64_t e = 0; e < c.epochs; ++e) {
    EXPECT_EQ(sorter->sort(), c.orders[e]) << "epoch " << e + 1;
    EXPECT_EQ(Order(sorter->order_of(0), sorter->order_of(0) + c.m), c.orders[e]);
    EXPECT_EQ(Order(sorter->order_of(1), sorter->order_of(1) + c.m), natural);
    std::vector<float> G(steps * 2 * rows, 0.0f);
    for (int64_t k = 0; k < steps; ++k)
      std::copy(c.step(e, k), c.step(e, k) + rows, G.begin() + k * 2 * rows);
    sorter->balance(G.data(), 0, steps);
  }
}

TEST(IndependentBalance, ACheckpointBetweenEpochsResumesTheSameOrders) {
  const GoldenCase& c = case_a();
  ScriptedPerms ops;
  auto first = make_sorter("I-B", shape_of(2, c.m, c.mb, c.D, /*epochs=*/1, /*rank=*/1), ops);
  first->sort();
  first->balance(c.epoch(0), 0, c.m / c.mb);
  StateWriter out;
  first->save_state(out);
  auto resumed = make_sorter("I-B", shape_of(2, c.m, c.mb, c.D, /*epochs=*/1, /*rank=*/1), ops);
  StateReader in(out.data(), "test");
  resumed->load_state(in);
  for (int64_t e = 1; e < c.epochs; ++e) {
    EXPECT_EQ(resumed->sort(), c.orders[e]) << "epoch " << e + 1;
    resumed->balance(c.epoch(e), 0, c.m / c.mb);
  }
  // A checkpoint of another shape is refused.
  auto other = make_sorter("I-B", shape_of(2, c.m / 2, c.mb, c.D, /*epochs=*/1, /*rank=*/1), ops);
  StateReader again(out.data(), "test");
  EXPECT_THROW(other->load_state(again), UserError);
}

TEST(ShuffleOnce, DrawsOnePermutationAtTheStartAndKeepsIt) {
  ScriptedPerms ops;
  ops.perms = {{2, 0, 3, 1}};
  auto sorter = make_sorter("SO", shape_of(2, 4, 2, 3, /*epochs=*/1, /*rank=*/1), ops);
  EXPECT_EQ(ops.randperm_calls, 1);  // at construction, where the other sorters draw (§5)
  EXPECT_EQ(sorter->needs(), GradientNeed::None);
  for (int epoch = 0; epoch < 3; ++epoch) {
    EXPECT_EQ(sorter->sort(), (Order{2, 0, 3, 1})) << "epoch " << epoch + 1;
    // Every rank shares the seed, so every rank's shard gets the same permutation.
    EXPECT_EQ(Order(sorter->order_of(0), sorter->order_of(0) + 4), (Order{2, 0, 3, 1}));
  }
  EXPECT_EQ(ops.randperm_calls, 1);  // never again: an unscripted draw would have thrown
}

TEST(ShuffleOnce, ACheckpointKeepsThePermutation) {
  ScriptedPerms ops;
  ops.perms = {{2, 0, 3, 1}, {3, 2, 1, 0}};
  auto first = make_sorter("SO", shape_of(1, 4, 2, 3), ops);
  first->sort();
  StateWriter out;
  first->save_state(out);
  // Built again, it would draw another permutation from a generator in another state; the
  // checkpoint's wins.
  auto resumed = make_sorter("SO", shape_of(1, 4, 2, 3), ops);
  StateReader in(out.data(), "test");
  resumed->load_state(in);
  EXPECT_TRUE(in.at_end());
  EXPECT_EQ(resumed->sort(), (Order{2, 0, 3, 1}));
  ops.perms = {{0, 1, 2, 3, 4, 5}};
  auto other = make_sorter("SO", shape_of(1, 6, 2, 3), ops);
  StateReader again(out.data(), "test");
  EXPECT_THROW(other->load_state(again), UserError);
}

TEST(FixedOrder, IsTheNaturalOrderEveryEpochAndDrawsNothing) {
  ScriptedPerms ops;  // any draw would throw
  auto sorter = make_sorter("fixed", shape_of(2, 5, 1, 3, /*epochs=*/1, /*rank=*/1), ops);
  EXPECT_EQ(sorter->needs(), GradientNeed::None);
  for (int epoch = 0; epoch < 3; ++epoch) {
    EXPECT_EQ(sorter->sort(), (Order{0, 1, 2, 3, 4}));
    EXPECT_EQ(Order(sorter->order_of(0), sorter->order_of(0) + 5), (Order{0, 1, 2, 3, 4}));
  }
  EXPECT_EQ(ops.randperm_calls, 0);
  StateWriter out;
  sorter->save_state(out);
  EXPECT_TRUE(out.data().empty());
}
