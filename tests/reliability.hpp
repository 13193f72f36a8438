// Helpers of the fault-injection tests (test_reliability.cpp, test_run_control.cpp,
// test_disk_full.cpp): the golden data's run flags and folders, comparisons of a disturbed run
// with an undisturbed one, and jobs started by hand so that a test can signal their ranks.
#pragma once

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "helpers.hpp"

namespace khsgd_test {

// The golden runs' flags (seed 1, lr 5e-3, --save_orders, --quiet, on `device`), `epochs` epochs,
// with a checkpoint after every epoch unless `extra` sets --checkpoint_every.
inline std::vector<std::string> golden_run_args(const TempDir& tmp, const std::string& sorter,
                                                std::vector<std::string> extra = {}, int epochs = 3,
                                                const std::string& device = "cpu") {
  std::vector<std::string> args = golden_flags(tmp, sorter, epochs, device);
  args.push_back("--quiet");
  if (std::find(extra.begin(), extra.end(), "--checkpoint_every") == extra.end())
    extra.insert(extra.end(), {"--checkpoint_every", "1"});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// metrics.csv without its timing columns: what must not change when a run is resumed.
inline std::vector<std::vector<double>> metrics_without_times(const std::string& path) {
  const Csv csv = read_csv(path);
  std::vector<std::vector<double>> rows;
  for (const auto& row : csv.rows) rows.emplace_back(row.begin(), row.begin() + 5);
  return rows;
}

// A stopped-and-resumed run folder against an uninterrupted one: the same metrics (timings
// apart), the same orders on every rank, every epoch's times, no checkpoint left, finished.
inline void expect_same_run(const std::string& resumed, const std::string& uninterrupted, int ranks,
                            int epochs = 3) {
  const auto a = metrics_without_times(resumed + "/metrics.csv");
  const auto b = metrics_without_times(uninterrupted + "/metrics.csv");
  ASSERT_EQ(a.size(), static_cast<size_t>(epochs));
  EXPECT_EQ(a, b) << "metrics differ after resuming";
  for (int r = 0; r < ranks; ++r) {
    const std::string name = "/orders-rank" + std::to_string(r) + ".csv";
    EXPECT_EQ(read_file(resumed + name), read_file(uninterrupted + name)) << name;
    EXPECT_EQ(read_csv(resumed + "/time-rank" + std::to_string(r) + ".csv").rows.size(),
              static_cast<size_t>(epochs));
    EXPECT_FALSE(file_exists(resumed + "/checkpoint-rank" + std::to_string(r) + ".bin"));
  }
  EXPECT_NE(read_file(resumed + "/summary.json").find("\"finished\": true"), std::string::npos);
}

inline int free_tcp_port(const TempDir& tmp) {
  const RunResult p = run_shell(
      "/usr/bin/env python3 -c 'import socket; s=socket.socket(); "
      "s.bind((\"127.0.0.1\",0)); print(s.getsockname()[1])' 2>/dev/null || echo 29877",
      tmp.path());
  return std::stoi(p.out);
}

// The ranks of one job started by hand (fork + exec of khsgd_train), so that a test can signal,
// pause or kill each of them. Rank r's stderr goes to DIR/errR. One rank runs as a plain process;
// several get RANK, WORLD_SIZE and MASTER_PORT, and LOCAL_RANK = r (LOCAL_WORLD_SIZE = ranks) when
// `local_ranks` (else none: every rank is the first on its host, as on hosts sharing the folder).
struct Job {
  std::vector<pid_t> pid;
  std::vector<bool> running;
  std::vector<std::string> err;
  std::vector<int> status;
  std::vector<double> seconds;
  std::string dir;  // where the err files go

  Job(const std::string& err_dir) : dir(err_dir) {}

  void start(int ranks, const std::vector<std::string>& args, int port = 0,
             bool local_ranks = false) {
    pid.assign(ranks, 0);
    running.assign(ranks, true);
    err.assign(ranks, "");
    status.assign(ranks, -1);
    seconds.assign(ranks, 0);
    std::vector<const char*> argv = {train_binary()};
    for (const auto& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    for (int r = 0; r < ranks; ++r) {
      const std::string errfile = dir + "/err" + std::to_string(r);
      pid[r] = fork();
      if (pid[r] != 0) continue;
      unsetenv("RANK");
      unsetenv("WORLD_SIZE");
      unsetenv("LOCAL_RANK");
      unsetenv("KHSGD_STOP_AFTER_EPOCH");
      if (ranks > 1) {
        setenv("RANK", std::to_string(r).c_str(), 1);
        setenv("WORLD_SIZE", std::to_string(ranks).c_str(), 1);
        setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
        if (local_ranks) {
          setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
          setenv("LOCAL_WORLD_SIZE", std::to_string(ranks).c_str(), 1);
        }
      }
      if (!freopen(errfile.c_str(), "w", stderr) || !freopen("/dev/null", "w", stdout)) _exit(126);
      execv(train_binary(), const_cast<char* const*>(argv.data()));
      _exit(127);
    }
  }

  void signal(int r, int sig) const {
    if (running[r] && pid[r] > 0) kill(pid[r], sig);  // never kill(0, ...): the process group
  }

  // Waits for rank r to exit, at most `limit` seconds; false if it is still running.
  bool wait_exit(int r, double limit) {
    const auto start = std::chrono::steady_clock::now();
    while (true) {
      int raw = 0;
      if (waitpid(pid[r], &raw, WNOHANG) == pid[r]) {
        status[r] = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
        seconds[r] =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        err[r] = read_file(dir + "/err" + std::to_string(r));
        running[r] = false;
        return true;
      }
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > limit)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  ~Job() {
    for (size_t r = 0; r < pid.size(); ++r)
      if (running[r] && pid[r] > 0) {
        kill(pid[r], SIGKILL);
        waitpid(pid[r], nullptr, 0);
      }
  }
};

// A base that owns a temporary folder, for helpers whose other bases need it constructed first.
struct WithTempDir {
  TempDir tmp;
};

// Waits until `path` holds at least `lines` lines (at most `limit` seconds); false if it never
// does.
inline bool wait_for_lines(const std::string& path, int lines, double limit = 120) {
  const auto start = std::chrono::steady_clock::now();
  while (count_lines(read_file(path)) < lines) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > limit)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

}  // namespace khsgd_test
