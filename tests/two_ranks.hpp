// Two ranks started by hand, so that a test can signal one of them mid-run (the lost-rank tests of
// test_reliability.cpp and, on the GPU, test_gpu.cpp): CD-GraB on the golden data, many epochs so
// that the fault lands mid-run.
#pragma once

#include <string>
#include <vector>

#include "reliability.hpp"

namespace khsgd_test {

struct TwoRanks : WithTempDir, Job {
  // Where they train: the CPU unless a test says otherwise (e.g. --device cuda --backend nccl).
  std::vector<std::string> device_flags = {"--device", "cpu"};

  TwoRanks() : Job(tmp.path()) {}

  void start(int timeout) {
    std::vector<std::string> args = {"--sorter",      "CD-GraB",
                                     "--epochs",      "40",
                                     "--lr",          "5e-3",
                                     "--seed",        "1",
                                     "--data_dir",    test_data("golden/data"),
                                     "--results_dir", tmp / "results",
                                     "--timeout",     std::to_string(timeout),
                                     "--quiet"};
    args.insert(args.end(), device_flags.begin(), device_flags.end());
    Job::start(2, args, free_tcp_port(tmp), /*local_ranks=*/true);
  }
  std::string time_file(int r) const {
    return tmp / ("results/LR-HMDA-40/LR-hmda-CD-GraB-node-2-lr-0.005-B-16-seed-1/time-rank" +
                  std::to_string(r) + ".csv");
  }
  std::string metrics_file() const {
    return tmp / "results/LR-HMDA-40/LR-hmda-CD-GraB-node-2-lr-0.005-B-16-seed-1/metrics.csv";
  }
  // Waits until rank r has finished `epochs` epochs (rank 0: with their metrics rows, which
  // follow its time lines).
  void wait_for_epochs(int r, int epochs) const {
    wait_for_lines(time_file(r), epochs + 1, 60);
    if (r == 0) wait_for_lines(metrics_file(), epochs + 1, 60);
  }
};

// The metrics a stopped run leaves: at least `at_least` whole epochs, in order, each trained.
inline void expect_valid_metrics(const std::string& path, int at_least) {
  const Csv m = read_csv(path);
  EXPECT_GE(static_cast<int>(m.rows.size()), at_least);
  for (size_t e = 0; e < m.rows.size(); ++e) {
    EXPECT_EQ(m.at(e, "epoch"), e + 1.0);
    EXPECT_GT(m.at(e, "test_acc"), 0.7);
  }
}

// A lost rank under `device_flags`: rank 1 is killed after two epochs; rank 0 must name it in one
// line and exit with status 3 within its timeout, its metrics intact.
inline void expect_killed_rank_named(TwoRanks& job) {
  job.start(/*timeout=*/10);
  job.wait_for_epochs(1, 2);
  job.signal(1, SIGKILL);
  ASSERT_TRUE(job.wait_exit(1, 5));
  ASSERT_TRUE(job.wait_exit(0, 60)) << "rank 0 did not stop after its peer died";
  EXPECT_EQ(job.status[0], 3) << job.err[0];
  EXPECT_NE(job.err[0].find("lost rank 1"), std::string::npos) << job.err[0];
  EXPECT_EQ(count_lines(job.err[0]), 1) << job.err[0];
  expect_valid_metrics(job.metrics_file(), 2);
}

}  // namespace khsgd_test
