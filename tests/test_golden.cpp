// Golden equivalence (ALGORITHM.md §8): khsgd_train against the published Python code's own outputs
// in tests/data/golden/cpu/ — seed 1, B 16, lr 5e-3, 3 epochs, 1 and 2 ranks over Gloo. The
// two-rank runs are repeated with the ranks started by mpirun (--backend auto then picks mpi), and
// as two workers inside one process (--in_process). Orders must be identical (D-RR exactly; the
// pair sorters agree decision for decision on this data); losses within 1e-4, accuracies within
// 5e-4.
#include <cmath>

#include "helpers.hpp"

using namespace khsgd_test;

namespace {

// How the ranks are started: one plain process, scripts/launch.sh (gloo), mpirun (mpi), or all
// as workers of one process.
enum class Via { Process, Launch, Mpirun, InProcess };

struct GoldenRun {
  std::string sorter;
  int ranks;
  Via via = Via::Launch;
};

std::string run_label(const GoldenRun& run) {
  return "n" + std::to_string(run.ranks) + "-" + run.sorter;
}

RunResult start(const GoldenRun& run, const std::vector<std::string>& args,
                const std::string& cwd) {
  switch (run.via) {
    case Via::Process: return run_train(args, cwd);
    case Via::Launch: return run_launch(run.ranks, args, cwd);
    case Via::Mpirun: return run_mpirun(run.ranks, args, cwd);
    case Via::InProcess: {
      std::vector<std::string> workers = args;
      workers.insert(workers.end(), {"--node_cnt", std::to_string(run.ranks), "--in_process"});
      return run_train(workers, cwd);
    }
  }
  return {};
}

void PrintTo(const GoldenRun& run, std::ostream* out) { *out << run_label(run); }

class GoldenCpu : public ::testing::TestWithParam<GoldenRun> {};

TEST_P(GoldenCpu, MatchesReferenceOrdersAndMetrics) {
  const GoldenRun run = GetParam();
  if (run.via == Via::Mpirun && !mpi_missing().empty()) GTEST_SKIP() << mpi_missing();
  TempDir tmp;
  std::vector<std::string> args = golden_flags(tmp, run.sorter, /*epochs=*/3);
  args.insert(args.end(), {"--B", "16"});  // the reference's batch, spelled out (also the default)
  const RunResult result = start(run, args, tmp.path());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const std::string dir = golden_run_dir(tmp, run.sorter, run.ranks, /*epochs=*/3);
  if (run.via == Via::Mpirun) {
    EXPECT_NE(read_file(dir + "/config.json").find("\"backend\": \"mpi\""), std::string::npos);
  }
  EXPECT_EQ(read_file(dir + "/config.json").find("\"in_process\": true") != std::string::npos,
            run.via == Via::InProcess);

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

std::string test_name(const ::testing::TestParamInfo<GoldenRun>& info) {
  const Via via = info.param.via;
  std::string name = run_label(info.param) + (via == Via::Mpirun      ? "-mpi"
                                              : via == Via::InProcess ? "-in-process"
                                                                      : "");
  for (char& c : name)
    if (c == '-') c = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(
    AllSevenRuns, GoldenCpu,
    ::testing::Values(GoldenRun{"CD-GraB", 1, Via::Process}, GoldenRun{"D-RR", 1, Via::Process},
                      GoldenRun{"KH-SGD", 1, Via::Process}, GoldenRun{"SBW", 1, Via::Process},
                      GoldenRun{"CD-GraB", 2}, GoldenRun{"D-RR", 2}, GoldenRun{"SBW", 2}),
    test_name);

INSTANTIATE_TEST_SUITE_P(TwoRanksOverMpi, GoldenCpu,
                         ::testing::Values(GoldenRun{"CD-GraB", 2, Via::Mpirun},
                                           GoldenRun{"D-RR", 2, Via::Mpirun},
                                           GoldenRun{"SBW", 2, Via::Mpirun}),
                         test_name);

INSTANTIATE_TEST_SUITE_P(TwoWorkersInOneProcess, GoldenCpu,
                         ::testing::Values(GoldenRun{"CD-GraB", 2, Via::InProcess},
                                           GoldenRun{"D-RR", 2, Via::InProcess},
                                           GoldenRun{"SBW", 2, Via::InProcess}),
                         test_name);

}  // namespace
