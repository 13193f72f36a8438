// The baseline sorters (GraB, I-B, SO, fixed) through khsgd_train on the golden data: whole runs
// that finish, with one rank and with two workers in one process, resume bit for bit from a
// checkpoint, and run the same as two real ranks.
#include "reliability.hpp"

using namespace khsgd_test;

namespace {

const std::vector<std::string> kTwoWorkers = {"--node_cnt", "2", "--in_process"};

std::vector<std::string> with(std::vector<std::string> flags,
                              const std::vector<std::string>& more) {
  flags.insert(flags.end(), more.begin(), more.end());
  return flags;
}

// `sorter` stopped abruptly after epoch `stop` (the fault hook, right after that epoch's
// checkpoint) and resumed, against an uninterrupted run: the same metrics and orders on every
// rank. `workers`: none (one rank) or kTwoWorkers.
void expect_resumes_bit_for_bit(const std::string& sorter, const std::vector<std::string>& workers,
                                int stop) {
  SCOPED_TRACE(sorter + (workers.empty() ? ", 1 rank" : ", 2 workers") + ", stopped after epoch " +
               std::to_string(stop));
  const int ranks = workers.empty() ? 1 : 2;
  TempDir whole, tmp;
  const RunResult done = run_train(golden_run_args(whole, sorter, workers), whole.path());
  ASSERT_EQ(done.exit_code, 0) << done.err;
  const RunResult stopped = run_train(golden_run_args(tmp, sorter, workers), tmp.path(),
                                      "KHSGD_STOP_AFTER_EPOCH=" + std::to_string(stop));
  ASSERT_EQ(stopped.exit_code, 9) << stopped.err;
  const RunResult resumed =
      run_train(golden_run_args(tmp, sorter, with(workers, {"--resume"})), tmp.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming after epoch " + std::to_string(stop)), std::string::npos);
  expect_same_run(golden_run_dir(tmp, sorter, ranks), golden_run_dir(whole, sorter, ranks), ranks);
}

// Two workers in one process against two ranks over gloo: the same numbers and orders.
void expect_in_process_matches_two_ranks(const std::string& sorter) {
  SCOPED_TRACE(sorter);
  TempDir in_process, launched;
  const RunResult a =
      run_train(golden_run_args(in_process, sorter, kTwoWorkers), in_process.path());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const RunResult b = run_launch(2, golden_run_args(launched, sorter), launched.path());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  expect_same_run(golden_run_dir(in_process, sorter, 2), golden_run_dir(launched, sorter, 2), 2);
}

std::vector<std::vector<int64_t>> orders_of(const TempDir& tmp, const std::string& sorter,
                                            int ranks, int rank) {
  return read_orders(golden_run_dir(tmp, sorter, ranks) + "/orders-rank" + std::to_string(rank) +
                     ".csv");
}

}  // namespace

TEST(SorterRuns, GraBResumesBitForBit) {
  expect_resumes_bit_for_bit("GraB", {}, 1);
  expect_resumes_bit_for_bit("GraB", kTwoWorkers, 2);
}

TEST(SorterRuns, GraBInOneProcessMatchesTwoRanks) { expect_in_process_matches_two_ranks("GraB"); }

TEST(SorterRuns, GraBRefusesTheGpuInOneLine) {
  TempDir tmp;
  const RunResult r = run_train(golden_run_args(tmp, "GraB", {}, 3, "cuda"), tmp.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--sorter GraB runs on the CPU only; use --device cpu"), std::string::npos)
      << r.err;
  EXPECT_FALSE(file_exists(tmp / "results"));
}

TEST(SorterRuns, GraBFirstEpochIsNaturalThenGradientDriven) {
  TempDir tmp;
  ASSERT_EQ(run_train(golden_run_args(tmp, "GraB"), tmp.path()).exit_code, 0);
  const auto orders = orders_of(tmp, "GraB", 1, 0);
  ASSERT_EQ(orders.size(), 3u);
  for (size_t i = 0; i < orders[0].size(); ++i) ASSERT_EQ(orders[0][i], static_cast<int64_t>(i));
  EXPECT_NE(orders[1], orders[0]);
  EXPECT_NE(orders[2], orders[1]);
}

TEST(SorterRuns, IndependentBalanceResumesBitForBit) {
  expect_resumes_bit_for_bit("I-B", {}, 2);
  expect_resumes_bit_for_bit("I-B", kTwoWorkers, 1);
}

// Each rank's sorter sees only its own gradients, nothing is gathered: two ranks in two processes
// and two workers in one (one sorter handed both workers' rows) must still agree bit for bit.
TEST(SorterRuns, IndependentBalanceInOneProcessMatchesTwoRanks) {
  expect_in_process_matches_two_ranks("I-B");
}

TEST(SorterRuns, IndependentBalanceRefusesTheGpuInOneLine) {
  TempDir tmp;
  const RunResult r = run_train(golden_run_args(tmp, "I-B", {}, 3, "cuda"), tmp.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--sorter I-B runs on the CPU only"), std::string::npos) << r.err;
  EXPECT_FALSE(file_exists(tmp / "results"));
}

TEST(SorterRuns, IndependentBalanceOrdersEachRankFromItsOwnGradients) {
  // Epoch 1 is natural on both ranks; from epoch 2 on each rank's own walk reorders its shard.
  TempDir tmp;
  ASSERT_EQ(run_train(golden_run_args(tmp, "I-B", kTwoWorkers), tmp.path()).exit_code, 0);
  const auto rank0 = orders_of(tmp, "I-B", 2, 0), rank1 = orders_of(tmp, "I-B", 2, 1);
  ASSERT_EQ(rank0.size(), 3u);
  ASSERT_EQ(rank1.size(), 3u);
  for (size_t i = 0; i < rank0[0].size(); ++i) {
    ASSERT_EQ(rank0[0][i], static_cast<int64_t>(i));
    ASSERT_EQ(rank1[0][i], static_cast<int64_t>(i));
  }
  EXPECT_NE(rank0[1], rank0[0]);
  EXPECT_NE(rank1[1], rank1[0]);
  EXPECT_NE(rank0[1], rank1[1]);  // two shards, two walks
}

TEST(SorterRuns, ShuffleOnceResumesBitForBit) {
  expect_resumes_bit_for_bit("SO", {}, 1);
  expect_resumes_bit_for_bit("SO", kTwoWorkers, 2);
}

TEST(SorterRuns, ShuffleOnceUsesOnePermutationEveryEpochOnEveryRank) {
  TempDir tmp;
  ASSERT_EQ(run_train(golden_run_args(tmp, "SO", kTwoWorkers), tmp.path()).exit_code, 0);
  const auto rank0 = orders_of(tmp, "SO", 2, 0), rank1 = orders_of(tmp, "SO", 2, 1);
  ASSERT_EQ(rank0.size(), 3u);
  std::vector<int64_t> sorted = rank0[0];
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) ASSERT_EQ(sorted[i], static_cast<int64_t>(i));
  EXPECT_NE(rank0[0], sorted);  // shuffled
  for (const auto& order : rank0) EXPECT_EQ(order, rank0[0]);
  EXPECT_EQ(rank1, rank0);
}

TEST(SorterRuns, ShuffleOnceInOneProcessMatchesTwoRanks) {
  expect_in_process_matches_two_ranks("SO");
}

TEST(SorterRuns, ShuffleOncePermutationIsTheReferenceDrrFirstEpoch) {
  // SO draws randperm(m) at construction, where D-RR draws nothing, from the generator in the
  // same state as D-RR's first sort(): its permutation is the reference's D-RR epoch-1 order.
  TempDir tmp;
  ASSERT_EQ(run_train(golden_run_args(tmp, "SO"), tmp.path()).exit_code, 0);
  const auto reference = read_orders(test_data("golden/cpu/n1-D-RR/orders-rank0.csv.gz"));
  const auto mine = orders_of(tmp, "SO", 1, 0);
  ASSERT_FALSE(reference.empty());
  for (const auto& order : mine) EXPECT_EQ(order, reference[0]);
}

TEST(SorterRuns, FixedResumesBitForBit) {
  expect_resumes_bit_for_bit("fixed", {}, 2);
  expect_resumes_bit_for_bit("fixed", kTwoWorkers, 1);
}

TEST(SorterRuns, FixedIsTheNaturalOrderOnEveryRankAndInOneProcessMatchesTwoRanks) {
  TempDir tmp;
  ASSERT_EQ(run_train(golden_run_args(tmp, "fixed", kTwoWorkers), tmp.path()).exit_code, 0);
  for (int rank = 0; rank < 2; ++rank) {
    const auto orders = orders_of(tmp, "fixed", 2, rank);
    ASSERT_EQ(orders.size(), 3u);
    for (const auto& order : orders)
      for (size_t i = 0; i < order.size(); ++i) ASSERT_EQ(order[i], static_cast<int64_t>(i));
  }
  expect_in_process_matches_two_ranks("fixed");
}
