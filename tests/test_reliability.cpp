// Faults injected on purpose: runs stopped after an epoch and resumed, damaged checkpoints,
// results folders in the way, and ranks that die or hang in the middle of a run.
#include <cmath>
#include <cstdio>
#include <fstream>

#include "khsgd/data/pt_file.hpp"
#include "two_ranks.hpp"

using namespace khsgd_test;

namespace {

std::vector<std::string> golden_args(const TempDir& tmp, const std::string& sorter,
                                     std::vector<std::string> extra = {}) {
  return golden_run_args(tmp, sorter, std::move(extra));
}

std::string run_dir(const TempDir& tmp, const std::string& sorter, int ranks = 1) {
  return golden_run_dir(tmp, sorter, ranks);
}

}  // namespace

TEST(Resume, AStoppedRunResumesBitForBit) {
  for (const std::string sorter : {"D-RR", "CD-GraB", "SBW", "KH-SGD"}) {
    TempDir whole;
    ASSERT_EQ(run_train(golden_args(whole, sorter), whole.path()).exit_code, 0);
    for (const int stop : {1, 2}) {
      SCOPED_TRACE(sorter + " stopped after epoch " + std::to_string(stop));
      TempDir tmp;
      // The hook ends the process abruptly right after epoch `stop`'s checkpoint, as a kill would.
      const RunResult stopped = run_train(golden_args(tmp, sorter), tmp.path(),
                                          "KHSGD_STOP_AFTER_EPOCH=" + std::to_string(stop));
      ASSERT_EQ(stopped.exit_code, 9) << stopped.err;
      ASSERT_EQ(read_csv(run_dir(tmp, sorter) + "/metrics.csv").rows.size(),
                static_cast<size_t>(stop));
      const RunResult resumed = run_train(golden_args(tmp, sorter, {"--resume"}), tmp.path());
      ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
      EXPECT_NE(resumed.out.find("resuming after epoch " + std::to_string(stop)),
                std::string::npos);
      expect_same_run(run_dir(tmp, sorter), run_dir(whole, sorter), 1);
    }
  }
}

TEST(Resume, TwoRanksResumeBitForBit) {
  TempDir whole, tmp;
  ASSERT_EQ(run_launch(2, golden_args(whole, "SBW"), whole.path()).exit_code, 0);
  ASSERT_EQ(
      run_launch(2, golden_args(tmp, "SBW"), tmp.path(), "KHSGD_STOP_AFTER_EPOCH=2").exit_code, 9);
  const RunResult resumed = run_launch(2, golden_args(tmp, "SBW", {"--resume"}), tmp.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_run(run_dir(tmp, "SBW", 2), run_dir(whole, "SBW", 2), 2);
}

TEST(Resume, RanksOneCheckpointApartResumeFromTheEpochBothHold) {
  // A run can stop after rank 0 replaced its checkpoint and before rank 1 did (a kill, or a full
  // disk on rank 1 alone): rank 1's latest is then rank 0's previous. Both resume from it.
  TempDir whole, tmp;
  ASSERT_EQ(run_launch(2, golden_args(whole, "CD-GraB"), whole.path()).exit_code, 0);
  ASSERT_EQ(
      run_launch(2, golden_args(tmp, "CD-GraB"), tmp.path(), "KHSGD_STOP_AFTER_EPOCH=2").exit_code,
      9);
  const std::string dir = run_dir(tmp, "CD-GraB", 2);
  ASSERT_TRUE(file_exists(dir + "/checkpoint-rank1.previous.bin"));
  ASSERT_EQ(std::rename((dir + "/checkpoint-rank1.previous.bin").c_str(),
                        (dir + "/checkpoint-rank1.bin").c_str()),
            0);
  const RunResult resumed = run_launch(2, golden_args(tmp, "CD-GraB", {"--resume"}), tmp.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming after epoch 1"), std::string::npos) << resumed.out;
  expect_same_run(dir, run_dir(whole, "CD-GraB", 2), 2);
  EXPECT_FALSE(file_exists(dir + "/checkpoint-rank0.previous.bin"));
}

TEST(Resume, TwoWorkersInOneProcessResumeToTheTwoRankRun) {
  TempDir whole, tmp;
  ASSERT_EQ(run_launch(2, golden_args(whole, "KH-SGD"), whole.path()).exit_code, 0);
  const std::vector<std::string> workers = {"--node_cnt", "2", "--in_process"};
  ASSERT_EQ(run_train(golden_args(tmp, "KH-SGD", workers), tmp.path(), "KHSGD_STOP_AFTER_EPOCH=2")
                .exit_code,
            9);
  std::vector<std::string> resume = workers;
  resume.push_back("--resume");
  const RunResult resumed = run_train(golden_args(tmp, "KH-SGD", resume), tmp.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_run(run_dir(tmp, "KH-SGD", 2), run_dir(whole, "KH-SGD", 2), 2);
}

TEST(Resume, LostResultRowsAreRestoredFromTheCheckpoint) {
  // A crash can leave metrics.csv ahead of the checkpoint (or damaged): the checkpoint's rows win.
  TempDir whole, tmp;
  ASSERT_EQ(run_train(golden_args(whole, "KH-SGD"), whole.path()).exit_code, 0);
  ASSERT_EQ(run_train(golden_args(tmp, "KH-SGD"), tmp.path(), "KHSGD_STOP_AFTER_EPOCH=2").exit_code,
            9);
  std::ofstream(run_dir(tmp, "KH-SGD") + "/metrics.csv", std::ios::trunc) << "garbage\n";
  ASSERT_EQ(run_train(golden_args(tmp, "KH-SGD", {"--resume"}), tmp.path()).exit_code, 0);
  expect_same_run(run_dir(tmp, "KH-SGD"), run_dir(whole, "KH-SGD"), 1);
}

TEST(Resume, DamagedOrForeignCheckpointsAreRefused) {
  TempDir tmp;
  ASSERT_EQ(
      run_train(golden_args(tmp, "CD-GraB"), tmp.path(), "KHSGD_STOP_AFTER_EPOCH=1").exit_code, 9);
  const std::string dir = run_dir(tmp, "CD-GraB");
  const std::string checkpoint = dir + "/checkpoint-rank0.bin";
  const std::string good = read_file(checkpoint);
  const std::string metrics_before = read_file(dir + "/metrics.csv");
  auto refused = [&](const std::string& needle,
                     const std::vector<std::string>& extra = {"--resume"}) {
    const RunResult r = run_train(golden_args(tmp, "CD-GraB", extra), tmp.path());
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(read_file(dir + "/metrics.csv"), metrics_before)
        << "a refused resume changed the results";
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] ^= 0x40;
  std::ofstream(checkpoint, std::ios::binary | std::ios::trunc) << flipped;
  refused("corrupt checkpoint (checksum mismatch)");
  std::ofstream(checkpoint, std::ios::binary | std::ios::trunc) << good.substr(0, good.size() / 3);
  refused("corrupt checkpoint (its length field does not match the file size (truncated?))");
  std::ofstream(checkpoint, std::ios::binary | std::ios::trunc) << "not a checkpoint at all";
  refused("corrupt checkpoint (not a khsgd checkpoint)");
  // Other data under the same folder name: one feature value changed.
  std::ofstream(checkpoint, std::ios::binary | std::ios::trunc) << good;
  std::system(("mkdir -p " + shell_quote(tmp / "other") + " && cp " +
               shell_quote(test_data("golden/data/targets-processed-NY-2017.pt")) + " " +
               shell_quote(tmp / "other"))
                  .c_str());
  std::vector<khsgd::HostTensor> features =
      khsgd::read_tensor_tuple(test_data("golden/data/features-processed-NY-2017.pt"));
  features[0].values[12345] += 0.5f;
  khsgd::write_tensor_tuple(tmp / "other/features-processed-NY-2017.pt", features);
  std::vector<std::string> other_data = {"--resume"};
  const RunResult r = run_train(
      [&] {
        auto args = golden_args(tmp, "CD-GraB", other_data);
        args[9] = tmp / "other";
        return args;
      }(),
      tmp.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("written by a run with other flags, other data or other ranks"),
            std::string::npos)
      << r.err;
  // And the intact checkpoint still resumes.
  EXPECT_EQ(run_train(golden_args(tmp, "CD-GraB", {"--resume"}), tmp.path()).exit_code, 0);
}

// --- Resuming what can be resumed ------------------------------------------------------------

namespace {

// A run of `sorter` stopped (killed) after epoch `stop` in `tmp`, with a checkpoint every epoch.
void stop_after(const TempDir& tmp, const std::string& sorter, int stop, int ranks = 1) {
  const std::string env = "KHSGD_STOP_AFTER_EPOCH=" + std::to_string(stop);
  const RunResult r = ranks == 1 ? run_train(golden_args(tmp, sorter), tmp.path(), env)
                                 : run_launch(ranks, golden_args(tmp, sorter), tmp.path(), env);
  ASSERT_EQ(r.exit_code, 9) << r.err;
}

void flip_a_byte(const std::string& path) {
  std::string bytes = read_file(path);
  bytes[bytes.size() / 2] ^= 0x40;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

}  // namespace

TEST(Resume, ADamagedLatestCheckpointFallsBackToThePreviousOne) {
  // Epoch 2's checkpoint damaged, epoch 1's whole: the run resumes after epoch 1 (losing one
  // epoch, not the run) and says so in one line.
  TempDir whole, tmp;
  ASSERT_EQ(run_train(golden_args(whole, "KH-SGD"), whole.path()).exit_code, 0);
  stop_after(tmp, "KH-SGD", 2);
  const std::string dir = run_dir(tmp, "KH-SGD");
  flip_a_byte(dir + "/checkpoint-rank0.bin");
  const RunResult resumed = run_train(golden_args(tmp, "KH-SGD", {"--resume"}), tmp.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(count_lines(resumed.err), 1) << resumed.err;
  EXPECT_NE(resumed.err.find("warning: " + dir +
                             "/checkpoint-rank0.bin: corrupt checkpoint (checksum mismatch); "
                             "resuming after epoch 1"),
            std::string::npos)
      << resumed.err;
  EXPECT_NE(resumed.out.find("resuming after epoch 1"), std::string::npos) << resumed.out;
  expect_same_run(dir, run_dir(whole, "KH-SGD"), 1);
}

TEST(Resume, ADamagedLatestCheckpointOnOneRankResumesEveryRankFromThePreviousEpoch) {
  TempDir whole, tmp;
  ASSERT_EQ(run_launch(2, golden_args(whole, "SBW"), whole.path()).exit_code, 0);
  stop_after(tmp, "SBW", 2, 2);
  const std::string dir = run_dir(tmp, "SBW", 2);
  flip_a_byte(dir + "/checkpoint-rank1.bin");
  const RunResult resumed = run_launch(2, golden_args(tmp, "SBW", {"--resume"}), tmp.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("[rank 1]: warning: " + dir + "/checkpoint-rank1.bin: corrupt"),
            std::string::npos)
      << resumed.err;
  EXPECT_NE(resumed.out.find("resuming after epoch 1"), std::string::npos) << resumed.out;
  expect_same_run(dir, run_dir(whole, "SBW", 2), 2);
}

TEST(Resume, AMissingOrShortenedTimeLogIsRebuilt) {
  // The times of the epochs it lacks are lost: their rows hold nan, every later row stays at its
  // epoch; the rest of the run is as if it had never stopped.
  TempDir whole;
  ASSERT_EQ(run_train(golden_args(whole, "D-RR"), whole.path()).exit_code, 0);
  for (const bool removed : {true, false}) {
    SCOPED_TRACE(removed ? "time-rank0.csv removed" : "time-rank0.csv cut after epoch 1");
    TempDir tmp;
    stop_after(tmp, "D-RR", 2);
    const std::string dir = run_dir(tmp, "D-RR");
    const std::string log = dir + "/time-rank0.csv";
    if (removed) {
      ASSERT_EQ(std::remove(log.c_str()), 0);
    } else {
      const std::string text = read_file(log);
      size_t cut = 0;
      for (int line = 0; line < 2; ++line) cut = text.find('\n', cut) + 1;
      std::ofstream(log, std::ios::trunc) << text.substr(0, cut);
    }
    const RunResult resumed = run_train(golden_args(tmp, "D-RR", {"--resume"}), tmp.path());
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_NE(resumed.err.find("lacked the times of epoch(s) " +
                               std::string(removed ? "1-2" : "2") + "; their rows are rebuilt"),
              std::string::npos)
        << resumed.err;
    expect_same_run(dir, run_dir(whole, "D-RR"), 1);
    const Csv times = read_csv(log);
    ASSERT_EQ(times.rows.size(), 3u);
    EXPECT_EQ(std::isnan(times.at(0, "train_seconds")), removed);
    EXPECT_TRUE(std::isnan(times.at(1, "train_seconds")));
    EXPECT_FALSE(std::isnan(times.at(2, "train_seconds")));
    for (size_t row = 0; row < 3; ++row) EXPECT_EQ(times.at(row, "epoch"), row + 1.0);
  }
}

TEST(Resume, ADeletedConfigJsonIsWrittenAgain) {
  TempDir tmp;
  stop_after(tmp, "SBW", 1);
  const std::string config = run_dir(tmp, "SBW") + "/config.json";
  ASSERT_EQ(std::remove(config.c_str()), 0);
  const RunResult resumed = run_train(golden_args(tmp, "SBW", {"--resume"}), tmp.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(read_file(config).find("\"sorter\": \"SBW\""), std::string::npos);
}

TEST(Resume, SaveGradsEpochsFinishedBeforeTheResumeAreNamed) {
  TempDir tmp;
  stop_after(tmp, "CD-GraB", 2);
  const std::string dir = run_dir(tmp, "CD-GraB");
  const RunResult resumed =
      run_train(golden_args(tmp, "CD-GraB", {"--resume", "--save_grads", "1,3"}), tmp.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(count_lines(resumed.err), 1) << resumed.err;
  EXPECT_NE(resumed.err.find("--save_grads: epoch(s) 1 finished before this resume"),
            std::string::npos)
      << resumed.err;
  EXPECT_FALSE(file_exists(dir + "/grads-epoch1.pt"));
  EXPECT_TRUE(file_exists(dir + "/grads-epoch3.pt"));
}

TEST(Resume, ACheckpointOfOtherFlagsNamesTheFlagThatDiffers) {
  TempDir tmp;
  stop_after(tmp, "D-RR", 1);
  const RunResult r =
      run_train(golden_args(tmp, "D-RR", {"--resume", "--momentum", "0.5"}), tmp.path());
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("checkpoint-rank0.bin: written by a run with other flags, other data or "
                       "other ranks (--momentum differs; here it is '0.5')"),
            std::string::npos)
      << r.err;
}

TEST(Resume, ResumeWithNoRunToResumeSaysItStartsANewOne) {
  TempDir tmp;
  const RunResult r = run_train(golden_args(tmp, "D-RR", {"--resume"}), tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--resume: '" + run_dir(tmp, "D-RR") +
                       "' holds no run to resume; starting a new one"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(read_csv(run_dir(tmp, "D-RR") + "/metrics.csv").rows.size(), 3u);
}

TEST(ExistingResults, FinishedAndUnfinishedRunsAreNotOverwrittenByAccident) {
  TempDir tmp;
  ASSERT_EQ(run_train(golden_args(tmp, "D-RR"), tmp.path()).exit_code, 0);
  const std::string dir = run_dir(tmp, "D-RR");
  const std::string metrics = read_file(dir + "/metrics.csv");
  RunResult again = run_train(golden_args(tmp, "D-RR"), tmp.path());
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_EQ(count_lines(again.err), 1) << again.err;
  EXPECT_NE(again.err.find("already holds a finished run; use --overwrite"), std::string::npos)
      << again.err;
  EXPECT_EQ(read_file(dir + "/metrics.csv"), metrics);
  again = run_train(golden_args(tmp, "D-RR", {"--resume"}), tmp.path());
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already holds a finished run"), std::string::npos);
  // --overwrite replaces it.
  const RunResult replaced =
      run_train(golden_args(tmp, "D-RR", {"--overwrite", "--save_grads", "1"}), tmp.path());
  EXPECT_EQ(replaced.exit_code, 0) << replaced.err;
  EXPECT_TRUE(file_exists(dir + "/grads-epoch1.pt"));

  // An unfinished run asks for --resume or --overwrite.
  TempDir unfinished;
  ASSERT_EQ(run_train(golden_args(unfinished, "SBW"), unfinished.path(), "KHSGD_STOP_AFTER_EPOCH=1")
                .exit_code,
            9);
  const RunResult asked = run_train(golden_args(unfinished, "SBW"), unfinished.path());
  EXPECT_EQ(asked.exit_code, 2);
  EXPECT_NE(asked.err.find(
                "holds an unfinished run; use --resume to continue it from its last checkpoint or "
                "--overwrite to start over"),
            std::string::npos)
      << asked.err;
  // Without checkpoints there is nothing to resume from.
  TempDir no_checkpoints;
  ASSERT_EQ(run_train(golden_args(no_checkpoints, "SBW", {"--checkpoint_every", "0"}),
                      no_checkpoints.path(), "KHSGD_STOP_AFTER_EPOCH=1")
                .exit_code,
            9);
  const RunResult nothing =
      run_train(golden_args(no_checkpoints, "SBW", {"--resume"}), no_checkpoints.path());
  EXPECT_EQ(nothing.exit_code, 2);
  EXPECT_NE(nothing.err.find("no checkpoint to resume from; use --overwrite"), std::string::npos)
      << nothing.err;
  // --resume on a folder that does not exist yet simply starts.
  TempDir fresh;
  EXPECT_EQ(run_train(golden_args(fresh, "SBW", {"--resume"}), fresh.path()).exit_code, 0);
}

TEST(ExistingResults, ContradictoryAndOutOfRangeFlags) {
  TempDir tmp;
  for (const auto& [extra, needle] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--resume", "--overwrite"}, "--resume and --overwrite contradict each other"},
           {{"--timeout", "0"}, "--timeout '0'"},
           {{"--checkpoint_every", "-1"}, "--checkpoint_every '-1'"}}) {
    const RunResult r = run_train(golden_args(tmp, "D-RR", extra), tmp.path());
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_FALSE(file_exists(tmp / "results"));
  }
}

TEST(DeadRank, AKilledRankIsNamedAndTheOthersStop) {
  TwoRanks job;
  expect_killed_rank_named(job);
}

TEST(DeadRank, AHungRankIsNamedWithinTheTimeout) {
  TwoRanks job;
  job.start(/*timeout=*/5);
  job.wait_for_epochs(1, 1);
  job.signal(1, SIGSTOP);  // hangs: alive, silent
  ASSERT_TRUE(job.wait_exit(0, 30)) << "rank 0 waited past its timeout";
  EXPECT_EQ(job.status[0], 3) << job.err[0];
  EXPECT_NE(job.err[0].find("lost rank 1 (no heartbeat"), std::string::npos) << job.err[0];
  EXPECT_LT(job.seconds[0], 5 + 15.0);
  expect_valid_metrics(job.metrics_file(), 1);
  // Woken up, the hung rank finds its peer gone and stops as well: nothing is left running.
  job.signal(1, SIGCONT);
  ASSERT_TRUE(job.wait_exit(1, 30)) << "the woken rank kept running";
  EXPECT_NE(job.status[1], 0);
}

TEST(DeadRank, LosingRankZeroAndItsStoreIsNamed) {
  TwoRanks job;
  job.start(/*timeout=*/10);
  job.wait_for_epochs(0, 1);
  job.signal(0, SIGKILL);
  ASSERT_TRUE(job.wait_exit(0, 5));
  ASSERT_TRUE(job.wait_exit(1, 30));
  EXPECT_EQ(job.status[1], 3) << job.err[1];
  EXPECT_NE(job.err[1].find("lost rank 0"), std::string::npos) << job.err[1];
  expect_valid_metrics(job.metrics_file(), 1);
}

namespace {

// Two ranks started by mpirun (through scripts/launch.sh --mpi, which execs it): the test holds
// mpirun's pid and finds each rank among its children by the rank mpirun gave it.
struct MpirunJob {
  TempDir tmp;
  pid_t mpirun = 0;
  std::string err;
  int status = -1;
  double seconds = 0;

  void start(int timeout) {
    mpirun = fork();
    if (mpirun == 0) {
      setenv("KHSGD_TRAIN", KHSGD_TRAIN_BINARY, 1);
      freopen((tmp / "err").c_str(), "w", stderr);
      freopen("/dev/null", "w", stdout);
      const std::string results = tmp / "results", data = test_data("golden/data"),
                        t = std::to_string(timeout);
      execl(KHSGD_LAUNCH_SCRIPT, KHSGD_LAUNCH_SCRIPT, "--mpi", "2", "--", "--sorter", "CD-GraB",
            "--epochs", "2000", "--lr", "5e-3", "--seed", "1", "--data_dir", data.c_str(),
            "--results_dir", results.c_str(), "--timeout", t.c_str(), "--quiet", "--device", "cpu",
            static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  std::string run_folder() const {
    return tmp / "results/LR-HMDA-2000/LR-hmda-CD-GraB-node-2-lr-0.005-B-16-seed-1";
  }
  void wait_for_epochs(int epochs) const {
    for (int i = 0; i < 600 && count_lines(read_file(run_folder() + "/metrics.csv")) < epochs + 1;
         ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // The pid of rank `r`: the child of mpirun whose environment says OMPI_COMM_WORLD_RANK=r.
  pid_t rank_pid(int r) const {
    const RunResult found = run_shell("for p in $(pgrep -P " + std::to_string(mpirun) +
                                          "); do tr '\\0' '\\n' < /proc/$p/environ | "
                                          "grep -qx OMPI_COMM_WORLD_RANK=" +
                                          std::to_string(r) + " && echo $p; done",
                                      tmp.path());
    return found.out.empty() ? 0 : std::stoi(found.out);
  }
  // After `epochs` epochs, sends rank 1 `signal`; false if rank 1 could not be found.
  bool signal_rank1_after(int epochs, int signal) {
    wait_for_epochs(epochs);
    const pid_t rank1 = rank_pid(1);
    return rank1 > 0 && kill(rank1, signal) == 0;
  }
  bool wait_exit(double limit) {
    const auto begin = std::chrono::steady_clock::now();
    while (true) {
      int raw = 0;
      if (waitpid(mpirun, &raw, WNOHANG) == mpirun) {
        status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
        err = read_file(tmp / "err");
        mpirun = 0;
        return true;
      }
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count() > limit)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~MpirunJob() {
    if (mpirun > 0) {
      kill(mpirun, SIGTERM);  // mpirun ends its ranks
      waitpid(mpirun, nullptr, 0);
    }
  }
};

}  // namespace

TEST(DeadRank, UnderMpirunAHungRankIsNamedWithinTheTimeout) {
  if (!mpi_missing().empty()) GTEST_SKIP() << mpi_missing();
  MpirunJob job;
  job.start(/*timeout=*/5);
  // Alive and silent: mpirun does not notice, the watchdog must.
  ASSERT_TRUE(job.signal_rank1_after(1, SIGSTOP));
  ASSERT_TRUE(job.wait_exit(30)) << "rank 0 waited past its timeout";
  EXPECT_EQ(job.status, 3) << job.err;
  EXPECT_NE(job.err.find("khsgd_train: communication error: rank 0: lost rank 1 (no heartbeat"),
            std::string::npos)
      << job.err;
  EXPECT_NE(job.err.find("over mpi did not finish within 5 s"), std::string::npos) << job.err;
  EXPECT_LT(job.seconds, 5 + 15.0);
  expect_valid_metrics(job.run_folder() + "/metrics.csv", 1);
}

TEST(DeadRank, UnderMpirunAKilledRankStopsTheOthers) {
  if (!mpi_missing().empty()) GTEST_SKIP() << mpi_missing();
  MpirunJob job;
  job.start(/*timeout=*/60);
  ASSERT_TRUE(job.signal_rank1_after(2, SIGKILL));
  // mpirun ends the others at once, well within --timeout; rank 0 says so in one line.
  ASSERT_TRUE(job.wait_exit(20)) << "mpirun did not stop the job";
  EXPECT_NE(job.status, 0);
  EXPECT_NE(job.err.find("khsgd_train: communication error: rank 0: stopped by mpirun"),
            std::string::npos)
      << job.err;
  EXPECT_NE(job.err.find("process rank 1"), std::string::npos)
      << "mpirun names the lost rank: " << job.err;
  expect_valid_metrics(job.run_folder() + "/metrics.csv", 2);
}
