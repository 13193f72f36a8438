// Golden equivalence (ALGORITHM.md §8): khsgd_train against the published Python code's own outputs in
// tests/data/golden/cpu/ — seed 1, B 16, lr 5e-3, 3 epochs, 1 and 2 ranks over Gloo.
// Orders must be identical (D-RR exactly; the pair sorters agree decision for decision on this
// data); losses within 1e-4, accuracies within 5e-4.
#include <cmath>

#include "helpers.hpp"

using namespace khsgd_test;

namespace {

struct GoldenRun {
  std::string sorter;
  int ranks;
};

std::string run_label(const GoldenRun& run) { return "n" + std::to_string(run.ranks) + "-" + run.sorter; }

void PrintTo(const GoldenRun& run, std::ostream* out) { *out << run_label(run); }

class GoldenCpu : public ::testing::TestWithParam<GoldenRun> {};

TEST_P(GoldenCpu, MatchesReferenceOrdersAndMetrics) {
  const GoldenRun run = GetParam();
  TempDir tmp;
  const std::vector<std::string> args = {
      "--sorter", run.sorter, "--seed", "1", "--lr", "5e-3", "--B", "16", "--epochs", "3",
      "--data_dir", test_data("golden/data"), "--results_dir", tmp / "results", "--save_orders",
      "--device", "cpu"};
  const RunResult result = run.ranks == 1 ? run_train(args, tmp.path()) : run_launch(run.ranks, args, tmp.path());
  ASSERT_EQ(result.exit_code, 0) << result.err;

  const std::string dir = tmp / ("results/LR-HMDA-3/LR-hmda-" + run.sorter + "-node-" +
                                 std::to_string(run.ranks) + "-lr-0.005-B-16-seed-1");
  const std::string golden = test_data("golden/cpu/" + run_label(run));
  const Csv ours = read_csv(dir + "/metrics.csv");
  const Csv reference = read_csv(golden + "/metrics.csv");
  ASSERT_EQ(ours.rows.size(), 3u);
  ASSERT_EQ(reference.rows.size(), 3u);
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(ours.at(e, "epoch"), reference.at(e, "epoch"));
    for (const char* loss : {"train_loss", "test_loss"})
      EXPECT_NEAR(ours.at(e, loss), reference.at(e, loss), 1e-4) << loss << " epoch " << e + 1;
    for (const char* acc : {"train_acc", "test_acc"})
      EXPECT_NEAR(ours.at(e, acc), reference.at(e, acc), 5e-4) << acc << " epoch " << e + 1;
  }
  for (int r = 0; r < run.ranks; ++r) {
    const auto our_orders = read_orders(dir + "/orders-rank" + std::to_string(r) + ".csv");
    const auto golden_orders = read_orders(golden + "/orders-rank" + std::to_string(r) + ".csv.gz");
    ASSERT_EQ(our_orders.size(), 3u);
    ASSERT_EQ(golden_orders.size(), 3u);
    for (size_t e = 0; e < 3; ++e) {
      ASSERT_EQ(our_orders[e].size(), golden_orders[e].size());
      size_t first_difference = our_orders[e].size();
      for (size_t i = 0; i < our_orders[e].size(); ++i)
        if (our_orders[e][i] != golden_orders[e][i]) {
          first_difference = i;
          break;
        }
      EXPECT_EQ(first_difference, our_orders[e].size())
          << "rank " << r << " epoch " << e + 1 << ": orders differ from position "
          << first_difference;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllSevenRuns, GoldenCpu,
                         ::testing::Values(GoldenRun{"CD-GraB", 1}, GoldenRun{"D-RR", 1},
                                           GoldenRun{"KH-SGD", 1}, GoldenRun{"SBW", 1},
                                           GoldenRun{"CD-GraB", 2}, GoldenRun{"D-RR", 2},
                                           GoldenRun{"SBW", 2}),
                         [](const ::testing::TestParamInfo<GoldenRun>& info) {
                           std::string name = run_label(info.param);
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

}  // namespace
