// Logistic regression kernels on hand-checked cases (LibTorch autograd checks are in
// test_autograd.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "khsgd/comm/comm.hpp"
#include "khsgd/engine/microbatch.hpp"
#include "khsgd/model/feature_blocks.hpp"
#include "khsgd/model/model.hpp"

using namespace khsgd;

TEST(Model, PerExampleGradientIsResidualTimesFeaturesAndOne) {
  // d = 2, theta = [0.5, -0.25; 0.1]; rows: x = (1, 2), y = 1 and x = (-2, 0), y = 0.
  const std::vector<float> X = {1, 2, -2, 0};
  const std::vector<float> y = {1, 0};
  const std::vector<float> theta = {0.5f, -0.25f, 0.1f};
  const std::vector<int64_t> rows = {1, 0};  // order matters: G follows `rows`
  std::vector<float> G(6);
  per_example_gradients(X.data(), y.data(), rows.data(), 2, 2, theta.data(), G.data());
  const double r1 = 1 / (1 + std::exp(0.9)) - 0.0;   // z = -1 + 0.1 = -0.9, y = 0
  const double r0 = 1 / (1 + std::exp(-0.1)) - 1.0;  // z = 0.5 - 0.5 + 0.1, y = 1
  const double expected[6] = {r1 * -2, 0.0, r1, r0 * 1, r0 * 2, r0};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(G[i], expected[i], 1e-6) << i;
}

TEST(Model, MeanLossGradientAveragesPerExampleGradients) {
  const std::vector<float> X = {1, 2, -2, 0, 0.5f, -1};
  const std::vector<float> y = {1, 0, 1};
  const std::vector<float> theta = {0.3f, -0.7f, 0.2f};
  const std::vector<int64_t> rows = {0, 1, 2};
  std::vector<float> G(9), mean(3), grad(3);
  per_example_gradients(X.data(), y.data(), rows.data(), 3, 2, theta.data(), G.data());
  mean_of_rows(G.data(), 3, 3, mean.data());
  mean_loss_gradient(X.data(), y.data(), rows.data(), 3, 2, theta.data(), grad.data());
  for (int j = 0; j < 3; ++j) {
    const double by_hand = (G[j] + G[3 + j] + G[6 + j]) / 3.0;
    EXPECT_NEAR(mean[j], by_hand, 1e-7);
    EXPECT_NEAR(grad[j], by_hand, 1e-7);
  }
}

TEST(Model, MomentumSgdMatchesTorchoptRecurrence) {
  // v1 = g1 = 1, theta1 = 2 - 0.1 * 1; v2 = 0.9 * 1 + 2 = 2.9, theta2 = 1.9 - 0.29.
  MomentumSGD sgd(1, 0.1, 0.9);
  float theta = 2.0f;
  const float g1 = 1.0f, g2 = 2.0f;
  sgd.step(&theta, &g1);
  EXPECT_FLOAT_EQ(sgd.velocity()[0], 1.0f);
  EXPECT_FLOAT_EQ(theta, 1.9f);
  sgd.step(&theta, &g2);
  EXPECT_FLOAT_EQ(sgd.velocity()[0], 2.9f);
  EXPECT_NEAR(theta, 1.61f, 1e-6);
}

TEST(Model, MomentumSgdRoundsEachOpInFloat32) {
  // theta + (-lr * v) with each product rounded to float32 on its own, as two separate tensor ops
  // do: recompute the same rounding by hand for awkward values.
  MomentumSGD sgd(1, 5e-3, 0.9);
  float theta = 0.123456789f;
  const float g = 0.987654321f;
  const float neg_lr = static_cast<float>(-5e-3);
  volatile float update = g * neg_lr;  // v = 0.9 * 0 + g = g
  const float expected = theta + update;
  sgd.step(&theta, &g);
  EXPECT_EQ(theta, expected);
}

TEST(Model, EvaluateComputesMeanBceAndAccuracy) {
  // d = 1, w = 1, b = -1: z = x - 1. Rows x = 2 (z = 1), x = 0 (z = -1), x = 1 (z = 0).
  const std::vector<float> X = {2, 0, 1, 2};
  const std::vector<float> y = {1, 1, 0, 0};
  const std::vector<float> theta = {1, -1};
  const Evaluation e = evaluate(X.data(), y.data(), 4, 1, theta.data());
  const double l1 = std::log1p(std::exp(-1.0));  // y = 1, z = 1
  const double l2 = 1 + l1;                      // y = 1, z = -1
  const double l3 = std::log(2.0);               // z = 0
  const double l4 = 1 + l1;                      // y = 0, z = 1
  EXPECT_NEAR(e.loss, (l1 + l2 + l3 + l4) / 4, 1e-12);
  // Predictions (z > 0): 1, 0, 0 (z = 0 is not > 0), 1 -> correct: yes, no, yes, no.
  EXPECT_EQ(e.correct, 2);
  EXPECT_EQ(e.rows, 4);
  EXPECT_DOUBLE_EQ(e.accuracy, 0.5);
}

TEST(Model, MicrobatchLanesGiveOneExampleAtATimeBitForBit) {
  // The lanes change only the order in which independent examples advance: every gradient must
  // equal, bit for bit, the straightforward loop over examples with logit() (the reference's
  // rounding), for any number of examples, full lane blocks or not, and feature counts that end
  // anywhere in a group of eight columns (the bias column lands in every lane of the last group).
  for (const int64_t d : {1, 5, 7, 8, 9, 16, 20, 23, 64}) {
    SCOPED_TRACE("d " + std::to_string(d));
    const int64_t D = d + 1, n_rows = 300;
    std::vector<float> X(n_rows * d), y(n_rows), theta(D);
    uint32_t state = 12345;
    auto next = [&state] {
      state = state * 1664525u + 1013904223u;
      return static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
    };
    for (float& v : X) v = 3.0f * next();
    for (float& v : y) v = next() > 0 ? 1.0f : 0.0f;
    for (float& v : theta) v = next();
    for (const int64_t count : {1, 2, 7, 8, 9, 16, 17, 64, 100}) {
      std::vector<int64_t> rows(count);
      for (int64_t i = 0; i < count; ++i) rows[i] = (i * 37 + 11) % n_rows;
      std::vector<float> expected_G(count * D), expected_grad(D, 0.0f), G(count * D), grad(D);
      for (int64_t i = 0; i < count; ++i) {
        const float* x = X.data() + rows[i] * d;
        const float r = residual(logit(x, theta.data(), d), y[rows[i]]);
        for (int64_t j = 0; j < d; ++j) expected_G[i * D + j] = r * x[j];
        expected_G[i * D + d] = r;
        const float scaled = r / static_cast<float>(count);
        for (int64_t j = 0; j < d; ++j) expected_grad[j] += scaled * x[j];
        expected_grad[d] += scaled;
      }
      Microbatch batch(100, d);
      batch.gather(X.data(), y.data(), rows.data(), count);
      batch.per_example_gradients(theta.data(), G.data());
      batch.mean_loss_gradient(theta.data(), grad.data());
      EXPECT_EQ(std::memcmp(G.data(), expected_G.data(), G.size() * sizeof(float)), 0) << count;
      EXPECT_EQ(std::memcmp(grad.data(), expected_grad.data(), D * sizeof(float)), 0) << count;
    }
  }
}

// block_dots against logit()'s dot product, bit for bit, for feature counts that take each of its
// paths (eight features at a time, four, one: d = 1 .. 21, 64, 200), rows at scattered places and
// the last row of the array (whose loads must stay inside it).
TEST(Model, BlockDotsAreLogitsDotProductsBitForBit) {
  uint32_t state = 777;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
  };
  std::vector<int64_t> ds = {64, 200};
  for (int64_t d = 1; d <= 21; ++d) ds.push_back(d);
  for (const int64_t d : ds) {
    const int64_t n_rows = 50;
    std::vector<float> X(n_rows * d), theta(d + 1);
    for (float& v : X) v = 4.0f * next();
    for (float& v : theta) v = next();
    const float* rows[Microbatch::kLanes];
    for (int64_t i = 0; i < Microbatch::kLanes; ++i)
      rows[i] = X.data() + ((i * 13 + 5) % n_rows) * d;
    rows[Microbatch::kLanes - 1] = X.data() + (n_rows - 1) * d;
    double dots[Microbatch::kLanes];
    Microbatch::block_dots(rows, theta.data(), d, dots);
    for (int64_t i = 0; i < Microbatch::kLanes; ++i) {
      double expected = 0.0;
      for (int64_t j = 0; j < d; ++j) expected += static_cast<double>(rows[i][j]) * theta[j];
      EXPECT_EQ(std::memcmp(&dots[i], &expected, sizeof(double)), 0) << "d " << d << ", row " << i;
      EXPECT_EQ(logit_from_dot(dots[i], theta[d]), logit(rows[i], theta.data(), d)) << d;
    }
  }
}

// The evaluation's feature blocks against logit(), bit for bit, at every width this CPU takes:
// feature counts on both sides of the vectors' sizes, a last block that is not full, every
// starting block, and values whose products leave float's range (exact in double: a fused
// multiply-add must give the bits of the product rounded, then added).
TEST(Model, FeatureBlockLogitsAreLogitBitForBit) {
  uint32_t state = 4242;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
  };
  std::vector<int> widths = {0};
  for (const int width : {4, 8})
    if (width <= FeatureBlocks::lane_width()) widths.push_back(width);
  std::vector<int64_t> ds = {64, 65, 200};
  for (int64_t d = 1; d <= 21; ++d) ds.push_back(d);
  for (const int64_t d : ds) {
    const int64_t rows = 53;  // three full blocks and five rows
    std::vector<float> X(rows * d), theta(d + 1);
    for (float& v : X) v = 4.0f * next();
    X[7] = 3e38f;
    X[static_cast<size_t>(rows * d - 1)] = 1e-38f;
    for (float& v : theta) v = next();
    theta[0] = 1e30f;
    const FeatureBlocks blocks(X.data(), rows, d);
    ASSERT_EQ(blocks.rows(), rows);
    for (const int width : widths)
      for (int64_t first = 0; first < rows; first += FeatureBlocks::kRows) {
        std::vector<float> z(static_cast<size_t>(rows - first));
        blocks.logits(theta.data(), first, rows - first, z.data(), width);
        for (int64_t i = first; i < rows; ++i) {
          const float expected = logit(X.data() + i * d, theta.data(), d);
          EXPECT_EQ(std::memcmp(&z[i - first], &expected, sizeof(float)), 0)
              << "d " << d << ", width " << width << ", row " << i;
        }
      }
  }
  const std::vector<float> column(20, 1.0f);
  const FeatureBlocks blocks(column.data(), 20, 1);
  float z[20];
  const float theta[2] = {1, 0};
  EXPECT_THROW(blocks.logits(theta, 8, 4, z), std::invalid_argument);   // not a block's start
  EXPECT_THROW(blocks.logits(theta, 16, 5, z), std::invalid_argument);  // past the last row
  EXPECT_THROW(blocks.logits(theta, 0, 4, z, 2), std::invalid_argument);
}

// An evaluation on several threads adds the same terms in the same order as on one: the same loss
// and count, bit for bit, for sets smaller than a thread's share, not a whole number of chunks,
// and empty; and both are the plain loop over rows with logit() and bce_with_logits().
TEST(Model, EvaluationOnSeveralThreadsIsOneThreadsBitForBit) {
  uint32_t state = 99;
  auto next = [&state] {
    state = state * 1664525u + 1013904223u;
    return static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
  };
  const int64_t d = 7;
  for (const int64_t rows : {0, 1, 255, 256, 257, 1000, 5003}) {
    std::vector<float> X(rows * d), y(rows), theta(d + 1);
    for (float& v : X) v = 3.0f * next();
    for (float& v : y) v = next() > 0.2f ? 1.0f : 0.0f;
    for (float& v : theta) v = next();
    double expected_loss = 0.0;
    int64_t expected_correct = 0;
    for (int64_t i = 0; i < rows; ++i) {
      const float z = logit(X.data() + i * d, theta.data(), d);
      expected_loss += bce_with_logits(z, y[i]);
      expected_correct += (z > 0.0f) == (y[i] == 1.0f);
    }
    if (rows) expected_loss /= rows;
    const FeatureBlocks blocks(X.data(), rows, d);
    for (const int threads : {1, 2, 3, 5}) {
      const Evaluation e = evaluate(blocks, y.data(), theta.data(), threads);
      EXPECT_EQ(std::memcmp(&e.loss, &expected_loss, sizeof(double)), 0)
          << rows << " rows, " << threads << " threads";
      EXPECT_EQ(e.correct, expected_correct) << rows << " rows, " << threads << " threads";
      EXPECT_EQ(e.rows, rows);
    }
  }
}

TEST(Model, MicrobatchGroupsAreEachWorkersOwnMeanGradient) {
  // Workers in one process: one gather of every worker's examples, then each worker's mean-loss
  // gradient over its own examples, bit for bit as if gathered alone.
  const int64_t d = 5, D = d + 1, workers = 4, each = 3;
  std::vector<float> X(40 * d), y(40), theta(D);
  for (size_t i = 0; i < X.size(); ++i) X[i] = std::sin(0.7f * static_cast<float>(i)) * 2.0f;
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 3 == 0);
  for (int64_t j = 0; j < D; ++j) theta[j] = 0.1f * static_cast<float>(j) - 0.2f;
  std::vector<int64_t> rows(workers * each);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int64_t>((i * 7 + 3) % 40);
  Microbatch all(workers * each, d);
  all.gather(X.data(), y.data(), rows.data(), workers * each);
  std::vector<float> grads(workers * D);
  all.mean_loss_gradients(theta.data(), workers, grads.data());
  for (int64_t w = 0; w < workers; ++w) {
    std::vector<float> alone(D);
    mean_loss_gradient(X.data(), y.data(), rows.data() + w * each, each, d, theta.data(),
                       alone.data());
    EXPECT_EQ(std::memcmp(alone.data(), grads.data() + w * D, D * sizeof(float)), 0) << w;
  }
}

TEST(Model, MicrobatchFetchingTheNextRowsAheadChangesNoResult) {
  // The step loop's use: each step gathers its rows, asks for the next step's (fetch_ahead), and
  // computes. Against a second Microbatch that never fetches ahead, every gradient bit for bit,
  // whether the step's examples are one worker's or 64 workers' of two (all 128 rows ahead: the
  // capacity), and whether the next step has as many rows or fewer.
  const int64_t d = 20, D = d + 1, n_rows = 1000;
  std::vector<float> X(n_rows * d), y(n_rows), theta(D);
  for (size_t i = 0; i < X.size(); ++i) X[i] = std::sin(0.61f * static_cast<float>(i));
  for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 3 != 1);
  for (const auto& [workers, each] : std::vector<std::pair<int64_t, int64_t>>{{1, 16}, {64, 2}}) {
    const int64_t count = workers * each, steps = 5;
    std::vector<int64_t> order(steps * count);
    for (size_t i = 0; i < order.size(); ++i)
      order[i] = static_cast<int64_t>((i * 389 + 7) % n_rows);
    Microbatch ahead(count, d), plain(count, d);
    for (int64_t k = 0; k < steps; ++k) {
      for (int64_t j = 0; j < D; ++j) theta[j] = 0.05f * std::cos(static_cast<float>(j + k));
      const int64_t* rows = order.data() + k * count;
      // Before each of the three computations (each the first after its fetch_ahead, which asks
      // for its rows in shares from within it): the step's gather, then the next step's rows.
      // The last step asks for fewer rows than it has (a shorter last step elsewhere).
      const int64_t next = k + 1 < steps ? count : count / 2;
      const auto start_step = [&] {
        ahead.gather(X.data(), y.data(), rows, count);
        plain.gather(X.data(), y.data(), rows, count);
        ahead.fetch_ahead(X.data(), y.data(), order.data() + (k + 1) % steps * count, next);
      };
      std::vector<float> G_a(count * D), G_p(count * D), g_a(workers * D), g_p(workers * D);
      std::vector<float> mean_a(D), mean_p(D);
      start_step();
      ahead.per_example_gradients(theta.data(), G_a.data());
      plain.per_example_gradients(theta.data(), G_p.data());
      start_step();
      ahead.mean_loss_gradients(theta.data(), workers, g_a.data());
      plain.mean_loss_gradients(theta.data(), workers, g_p.data());
      start_step();
      ahead.mean_of_group_gradients(theta.data(), workers, mean_a.data());
      plain.mean_of_group_gradients(theta.data(), workers, mean_p.data());
      EXPECT_EQ(std::memcmp(G_a.data(), G_p.data(), G_a.size() * sizeof(float)), 0) << k;
      EXPECT_EQ(std::memcmp(g_a.data(), g_p.data(), g_a.size() * sizeof(float)), 0) << k;
      EXPECT_EQ(std::memcmp(mean_a.data(), mean_p.data(), D * sizeof(float)), 0) << k;
    }
  }
}

TEST(Model, WorkerGradientsAreSummedInRankOrder) {
  // Hand-checked: 1e8 + 1 rounds back to 1e8 in float32, so rank order (1e8 + 1) - 1e8 gives 0
  // where any other order of the three gives 1.
  const float three[3] = {1e8f, 1.0f, -1e8f};
  float sum = -1.0f;
  sum_in_rank_order(three, 3, 1, &sum);
  EXPECT_EQ(sum, 0.0f);
  // 64 workers' gradients of 21 floats (the lanes and a remainder), against the plain loop of
  // each column over the ranks in order, bit for bit; and into rank 0's own row.
  const int ranks = 64;
  const int64_t D = 21;
  std::vector<float> rows(ranks * D);
  for (size_t i = 0; i < rows.size(); ++i)
    rows[i] = std::sin(1.3f * static_cast<float>(i)) * std::exp2(static_cast<float>(i % 29) - 9.0f);
  std::vector<float> out(D, -1.0f);
  sum_in_rank_order(rows.data(), ranks, D, out.data());
  for (int64_t j = 0; j < D; ++j) {
    float expected = rows[j];
    for (int r = 1; r < ranks; ++r) expected += rows[r * D + j];
    EXPECT_EQ(std::memcmp(&expected, &out[j], sizeof(float)), 0) << j;
  }
  sum_in_rank_order(rows.data(), ranks, D, rows.data());
  EXPECT_EQ(std::memcmp(rows.data(), out.data(), D * sizeof(float)), 0);
}

TEST(Model, MeanOfWorkersGradientsIsTheirRankSumDividedBitForBit) {
  // The in-process workers' step: Microbatch::mean_of_group_gradients against the three steps it
  // stands for (each worker's mean-loss gradient, their sum in rank order, the division by the
  // workers), for column counts around the vector width and for 64 workers of 2 (--node_cnt 64,
  // B 128).
  for (const int64_t d : {1, 5, 7, 8, 9, 16, 20, 23}) {
    for (const auto& [workers, each] :
         std::vector<std::pair<int64_t, int64_t>>{{2, 1}, {2, 8}, {4, 3}, {64, 2}, {3, 70}}) {
      const int64_t D = d + 1, count = workers * each, n_rows = 300;
      std::vector<float> X(n_rows * d), y(n_rows), theta(D);
      for (size_t i = 0; i < X.size(); ++i)
        X[i] =
            std::sin(0.37f * static_cast<float>(i)) * std::exp2(static_cast<float>(i % 7) - 2.0f);
      for (size_t i = 0; i < y.size(); ++i) y[i] = static_cast<float>(i % 4 != 0);
      for (int64_t j = 0; j < D; ++j) theta[j] = 0.3f * std::cos(static_cast<float>(j));
      std::vector<int64_t> rows(count);
      for (int64_t i = 0; i < count; ++i) rows[i] = (i * 37 + 11) % n_rows;
      Microbatch batch(count, d);
      batch.gather(X.data(), y.data(), rows.data(), count);
      std::vector<float> grads(workers * D), expected(D), mean(D, -7.0f);
      batch.mean_loss_gradients(theta.data(), workers, grads.data());
      sum_in_rank_order(grads.data(), static_cast<int>(workers), D, expected.data());
      for (float& e : expected) e /= static_cast<float>(workers);
      batch.mean_of_group_gradients(theta.data(), workers, mean.data());
      EXPECT_EQ(std::memcmp(expected.data(), mean.data(), D * sizeof(float)), 0)
          << "d " << d << ", " << workers << " workers of " << each;
    }
  }
}
