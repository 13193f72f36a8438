// Two ranks started by hand, so that a test can signal one of them mid-run (the lost-rank tests of
// test_reliability.cpp and, on the GPU, test_gpu.cpp): CD-GraB on the golden data, many epochs so
// that the fault lands mid-run.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "helpers.hpp"

namespace khsgd_test {

struct TwoRanks {
  TempDir tmp;
  // Where they train: the CPU unless a test says otherwise (e.g. --device cuda --backend nccl).
  std::vector<std::string> device_flags = {"--device", "cpu"};
  pid_t pid[2] = {0, 0};
  std::string err[2];
  int status[2] = {-1, -1};
  double seconds[2] = {0, 0};

  void start(int timeout) {
    int port = 0;
    {
      const RunResult p = run_shell("/usr/bin/env python3 -c 'import socket; s=socket.socket(); "
                                    "s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])' 2>/dev/null || echo 29877",
                                    tmp.path());
      port = std::stoi(p.out);
    }
    std::vector<std::string> args = {KHSGD_TRAIN_BINARY, "--sorter", "CD-GraB", "--epochs", "40",
                                     "--lr", "5e-3", "--seed", "1", "--data_dir",
                                     test_data("golden/data"), "--results_dir", tmp / "results",
                                     "--timeout", std::to_string(timeout), "--quiet"};
    args.insert(args.end(), device_flags.begin(), device_flags.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (int r = 0; r < 2; ++r) {
      pid[r] = fork();
      if (pid[r] == 0) {
        setenv("RANK", std::to_string(r).c_str(), 1);
        setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
        setenv("WORLD_SIZE", "2", 1);
        setenv("LOCAL_WORLD_SIZE", "2", 1);
        setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
        const std::string errfile = tmp / ("err" + std::to_string(r));
        freopen(errfile.c_str(), "w", stderr);
        freopen("/dev/null", "w", stdout);
        execv(KHSGD_TRAIN_BINARY, argv.data());
        _exit(127);
      }
    }
  }
  std::string time_file(int r) const {
    return tmp / ("results/LR-HMDA-40/LR-hmda-CD-GraB-node-2-lr-0.005-B-16-seed-1/time-rank" +
                  std::to_string(r) + ".csv");
  }
  std::string metrics_file() const {
    return tmp / "results/LR-HMDA-40/LR-hmda-CD-GraB-node-2-lr-0.005-B-16-seed-1/metrics.csv";
  }
  // Waits until rank r has finished `epochs` epochs.
  void wait_for_epochs(int r, int epochs) const {
    for (int i = 0; i < 600 && count_lines(read_file(time_file(r))) < epochs + 1; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Waits for rank r to exit, at most `limit` seconds; returns false if it is still running.
  bool wait_exit(int r, double limit) {
    const auto start = std::chrono::steady_clock::now();
    while (true) {
      int raw = 0;
      if (waitpid(pid[r], &raw, WNOHANG) == pid[r]) {
        status[r] = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
        seconds[r] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        err[r] = read_file(tmp / ("err" + std::to_string(r)));
        return true;
      }
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > limit) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~TwoRanks() {
    for (pid_t p : pid)
      if (p > 0) {
        kill(p, SIGKILL);
        waitpid(p, nullptr, 0);
      }
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
  kill(job.pid[1], SIGKILL);
  ASSERT_TRUE(job.wait_exit(1, 5));
  ASSERT_TRUE(job.wait_exit(0, 60)) << "rank 0 did not stop after its peer died";
  EXPECT_EQ(job.status[0], 3) << job.err[0];
  EXPECT_NE(job.err[0].find("lost rank 1"), std::string::npos) << job.err[0];
  EXPECT_EQ(count_lines(job.err[0]), 1) << job.err[0];
  expect_valid_metrics(job.metrics_file(), 2);
}

}  // namespace khsgd_test
