// Who controls a run once it is going: one run per results folder, ranks that must agree on
// --resume/--overwrite, a clean stop on SIGTERM/SIGINT (alone, on several ranks, through
// scripts/launch.sh), and when checkpoints are written.
#include <fstream>

#include "reliability.hpp"

using namespace khsgd_test;

namespace {

// Every file under `dir` with its contents, to tell that a refused run changed nothing.
std::string folder_snapshot(const std::string& dir) {
  std::string snapshot;
  FILE* pipe = popen(("cd " + shell_quote(dir) + " && find . -type f | sort").c_str(), "r");
  char line[4096];
  while (pipe && fgets(line, sizeof line, pipe)) {
    std::string name = line;
    name.pop_back();
    snapshot += name + "\n" + read_file(dir + "/" + name) + "\n";
  }
  if (pipe) pclose(pipe);
  return snapshot;
}

std::string holder_pid(const std::string& dir) {
  const std::string lock = read_file(dir + "/.lock");
  const size_t at = lock.find("pid ");
  return at == std::string::npos ? "" : lock.substr(at + 4, lock.find('\n', at) - at - 4);
}

// Waits until the run in `dir` holds its lock (its pid written into DIR/.lock).
bool wait_for_lock(const std::string& dir, pid_t pid) {
  for (int i = 0; i < 6000; ++i) {
    if (holder_pid(dir) == std::to_string(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

std::string host() {
  char name[256] = {0};
  gethostname(name, sizeof name - 1);
  return name;
}

}  // namespace

// --- One run per folder ----------------------------------------------------------------------

TEST(FolderLock, ASecondRunIsRefusedAndTheFirstFinishesUnharmed) {
  TempDir tmp, whole;
  const std::vector<std::string> args = golden_run_args(tmp, "CD-GraB", {}, 40);
  const std::string dir = golden_run_dir(tmp, "CD-GraB", 1, 40);
  ASSERT_EQ(run_train(golden_run_args(whole, "CD-GraB", {}, 40), whole.path()).exit_code, 0);

  Job first(tmp.path());
  first.start(1, args);
  const pid_t pid = first.pid[0];
  ASSERT_TRUE(wait_for_lock(dir, pid)) << read_file(dir + "/.lock");
  first.signal(0, SIGSTOP);  // paused, so that it certainly runs while the others try
  ASSERT_FALSE(file_exists(dir + "/summary.json")) << "the first run ended before it was paused";
  const std::string before = folder_snapshot(dir);
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, {"--resume"}, {"--overwrite"}}) {
    SCOPED_TRACE(extra.empty() ? "plain" : extra[0]);
    std::vector<std::string> second = args;
    second.insert(second.end(), extra.begin(), extra.end());
    const RunResult r = run_train(second, tmp.path());
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("khsgd_train: error: '" + dir + "' is in use by another run (pid " +
                         std::to_string(pid) + " on host " + host() + ")"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(folder_snapshot(dir), before) << "a refused run changed the folder";
  }
  first.signal(0, SIGCONT);
  ASSERT_TRUE(first.wait_exit(0, 120));
  EXPECT_EQ(first.status[0], 0) << first.err[0];
  expect_same_run(dir, golden_run_dir(whole, "CD-GraB", 1, 40), 1, 40);
  // The lock went with the run: the folder is a finished run now, which --overwrite may replace.
  const RunResult again = run_train(args, tmp.path());
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already holds a finished run"), std::string::npos) << again.err;
  std::vector<std::string> overwrite = args;
  overwrite.push_back("--overwrite");
  EXPECT_EQ(run_train(overwrite, tmp.path()).exit_code, 0);
}

TEST(FolderLock, EveryRankOfASecondJobIsRefusedWithOneLine) {
  TempDir tmp;
  const std::vector<std::string> args = golden_run_args(tmp, "SBW", {}, 5);
  const std::string dir = golden_run_dir(tmp, "SBW", 2, 5);
  Job first(tmp.path());
  first.start(2, args, free_tcp_port(tmp), /*local_ranks=*/true);
  ASSERT_TRUE(wait_for_lock(dir, first.pid[0]));
  first.signal(0, SIGSTOP);
  first.signal(1, SIGSTOP);
  ASSERT_FALSE(file_exists(dir + "/summary.json"));
  const std::string before = folder_snapshot(dir);
  const RunResult second = run_launch(2, args, tmp.path());
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_EQ(count_lines(second.err), 2) << second.err;
  EXPECT_NE(second.err.find("is in use by another run (pid " + std::to_string(first.pid[0])),
            std::string::npos)
      << second.err;
  EXPECT_NE(second.err.find("[rank 1]: error: rank 0 could not lock its results folder"),
            std::string::npos)
      << second.err;
  EXPECT_EQ(folder_snapshot(dir), before);
  first.signal(0, SIGCONT);
  first.signal(1, SIGCONT);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(first.wait_exit(r, 120));
    EXPECT_EQ(first.status[r], 0) << first.err[r];
  }
  EXPECT_EQ(read_csv(dir + "/metrics.csv").rows.size(), 5u);
}

// --- Ranks agree on every flag --------------------------------------------------------------

TEST(FlagAgreement, RanksThatDisagreeOnResumeOrOverwriteStopBeforeWriting) {
  TempDir tmp;
  const std::string dir = golden_run_dir(tmp, "SBW", 2);
  ASSERT_EQ(
      run_launch(2, golden_run_args(tmp, "SBW"), tmp.path(), "KHSGD_STOP_AFTER_EPOCH=1").exit_code,
      9);
  const std::string before = folder_snapshot(dir);
  for (const std::string flag : {"--resume", "--overwrite"}) {
    SCOPED_TRACE(flag);
    // Rank 0 with the flag, rank 1 without: two processes, as two shells would start them.
    std::string script = "cd " + shell_quote(tmp.path()) + " && export WORLD_SIZE=2 MASTER_PORT=" +
                         std::to_string(free_tcp_port(tmp)) + ";";
    for (int r = 0; r < 2; ++r)
      script +=
          " RANK=" + std::to_string(r) + " " + shell_quote(train_binary()) +
          join_args(golden_run_args(
              tmp, "SBW", r == 0 ? std::vector<std::string>{flag} : std::vector<std::string>{})) +
          " >/dev/null 2>" + shell_quote(tmp / ("err" + std::to_string(r))) + " & p" +
          std::to_string(r) + "=$!;";
    script += " wait $p0; s0=$?; wait $p1; echo \"$s0 $?\"";
    const RunResult r = run_shell(script, tmp.path());
    EXPECT_EQ(r.out, "2 2\n") << "exit statuses of ranks 0 and 1";
    for (int rank = 0; rank < 2; ++rank) {
      const std::string err = read_file(tmp / ("err" + std::to_string(rank)));
      EXPECT_EQ(count_lines(err), 1) << err;
      EXPECT_NE(err.find("rank 1 was started with different flags or different data than rank 0 (" +
                         flag + " differs"),
                std::string::npos)
          << err;
    }
    EXPECT_EQ(folder_snapshot(dir), before) << "ranks that disagree changed the folder";
  }
}

// --- A clean stop ------------------------------------------------------------------------------

namespace {

// The epoch named by "stopped by SIG after epoch E; --resume continues", or -1.
int stopped_after(const std::string& err, const std::string& signal) {
  const std::string head = "stopped by " + signal + " after epoch ";
  const size_t at = err.find(head);
  if (at == std::string::npos) return -1;
  const size_t end = err.find("; --resume continues", at);
  return end == std::string::npos ? -1
                                  : std::stoi(err.substr(at + head.size(), end - at - head.size()));
}

}  // namespace

TEST(CleanStop, OneRankStopsAtTheEndOfAnEpochAndResumesBitForBit) {
  const int kEpochs = 60;
  TempDir whole;
  // The default schedule (every 60 s) writes no checkpoint in so short a run: the stop writes one.
  const std::vector<std::string> defaults = {"--checkpoint_every", "0"};
  ASSERT_EQ(run_train(golden_run_args(whole, "KH-SGD", defaults, kEpochs), whole.path()).exit_code,
            0);
  for (const auto& [sig, name] :
       std::vector<std::pair<int, std::string>>{{SIGTERM, "SIGTERM"}, {SIGINT, "SIGINT"}}) {
    SCOPED_TRACE(name);
    TempDir tmp;
    const std::string dir = golden_run_dir(tmp, "KH-SGD", 1, kEpochs);
    Job job(tmp.path());
    job.start(1, golden_run_args(tmp, "KH-SGD", defaults, kEpochs));
    ASSERT_TRUE(wait_for_lines(dir + "/metrics.csv", 3));
    job.signal(0, sig);
    ASSERT_TRUE(job.wait_exit(0, 60));
    EXPECT_EQ(job.status[0], 128 + sig) << job.err[0];
    EXPECT_EQ(count_lines(job.err[0]), 1) << job.err[0];
    const int epoch = stopped_after(job.err[0], name);
    ASSERT_GE(epoch, 2) << job.err[0];
    ASSERT_LT(epoch, kEpochs) << job.err[0];
    EXPECT_EQ(read_csv(dir + "/metrics.csv").rows.size(), static_cast<size_t>(epoch));
    EXPECT_TRUE(file_exists(dir + "/checkpoint-rank0.bin"));
    EXPECT_FALSE(file_exists(dir + "/summary.json"));
    const RunResult resumed =
        run_train(golden_run_args(tmp, "KH-SGD", {"--checkpoint_every", "0", "--resume"}, kEpochs),
                  tmp.path());
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_NE(resumed.out.find("resuming after epoch " + std::to_string(epoch)), std::string::npos);
    expect_same_run(dir, golden_run_dir(whole, "KH-SGD", 1, kEpochs), 1, kEpochs);
  }
}

TEST(CleanStop, ASignalToOneRankStopsEveryRankAfterTheSameEpoch) {
  const int kEpochs = 4;
  TempDir whole, tmp;
  const std::vector<std::string> defaults = {"--checkpoint_every", "0"};
  ASSERT_EQ(
      run_launch(2, golden_run_args(whole, "CD-GraB", defaults, kEpochs), whole.path()).exit_code,
      0);
  const std::string dir = golden_run_dir(tmp, "CD-GraB", 2, kEpochs);
  Job job(tmp.path());
  job.start(2, golden_run_args(tmp, "CD-GraB", defaults, kEpochs), free_tcp_port(tmp), true);
  ASSERT_TRUE(wait_for_lines(dir + "/metrics.csv", 2));
  job.signal(1, SIGTERM);
  int epoch[2];
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(job.wait_exit(r, 60));
    EXPECT_EQ(job.status[r], 143) << job.err[r];
    EXPECT_EQ(count_lines(job.err[r]), 1) << job.err[r];
    epoch[r] = stopped_after(job.err[r], "SIGTERM");
    EXPECT_TRUE(file_exists(dir + "/checkpoint-rank" + std::to_string(r) + ".bin"));
  }
  EXPECT_EQ(epoch[0], epoch[1]) << "the ranks stopped after different epochs";
  ASSERT_GE(epoch[0], 1);
  ASSERT_LT(epoch[0], kEpochs);
  const RunResult resumed = run_launch(
      2, golden_run_args(tmp, "CD-GraB", {"--checkpoint_every", "0", "--resume"}, kEpochs),
      tmp.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  expect_same_run(dir, golden_run_dir(whole, "CD-GraB", 2, kEpochs), 2, kEpochs);
}

TEST(CleanStop, ACtrlCOnLaunchShStopsEveryRankCleanly) {
  // The launcher passes the signal on and waits: its status is the ranks' (130).
  const int kEpochs = 4;
  TempDir tmp;
  const std::string dir = golden_run_dir(tmp, "D-RR", 2, kEpochs);
  const pid_t launcher = fork();
  if (launcher == 0) {
    freopen((tmp / "launch.err").c_str(), "w", stderr);
    freopen("/dev/null", "w", stdout);
    setenv("KHSGD_TRAIN", train_binary(), 1);
    setenv("MASTER_PORT", std::to_string(free_tcp_port(tmp)).c_str(), 1);
    std::vector<std::string> args = {KHSGD_LAUNCH_SCRIPT, "2", "--"};
    for (const auto& a : golden_run_args(tmp, "D-RR", {"--checkpoint_every", "0"}, kEpochs))
      args.push_back(a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(KHSGD_LAUNCH_SCRIPT, argv.data());
    _exit(127);
  }
  ASSERT_TRUE(wait_for_lines(dir + "/metrics.csv", 2));
  kill(launcher, SIGINT);
  int raw = 0;
  ASSERT_EQ(waitpid(launcher, &raw, 0), launcher);
  ASSERT_TRUE(WIFEXITED(raw));
  const std::string err = read_file(tmp / "launch.err");
  EXPECT_EQ(WEXITSTATUS(raw), 130) << err;
  EXPECT_EQ(count_lines(err), 2) << err;
  const int epoch = stopped_after(err, "SIGINT");
  EXPECT_GE(epoch, 1) << err;
  EXPECT_NE(err.find("[rank 1]: stopped by SIGINT after epoch " + std::to_string(epoch)),
            std::string::npos)
      << err;
  for (int r = 0; r < 2; ++r)
    EXPECT_TRUE(file_exists(dir + "/checkpoint-rank" + std::to_string(r) + ".bin"));
  const RunResult resumed =
      run_launch(2, golden_run_args(tmp, "D-RR", {"--checkpoint_every", "0", "--resume"}, kEpochs),
                 tmp.path());
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(read_csv(dir + "/metrics.csv").rows.size(), static_cast<size_t>(kEpochs));
}

TEST(CleanStop, ASecondCtrlCExitsAtOnce) {
  // A million rows: an epoch (0.1-0.2 s) long enough for both signals to land inside it, or in
  // the stop's checkpoint. The pause between them keeps the kernel from merging the two.
  TempDir tmp;
  const std::string dir =
      tmp / "results/LR-HMDA-50/LR-synthetic-CD-GraB-node-1-lr-0.005-B-16-seed-1";
  Job job(tmp.path());
  job.start(1, {"--dataset", "synthetic", "--synthetic_rows", "1000000", "--lr", "5e-3", "--seed",
                "1", "--results_dir", tmp / "results", "--quiet", "--device", "cpu"});
  ASSERT_TRUE(wait_for_lines(dir + "/metrics.csv", 2));
  job.signal(0, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  job.signal(0, SIGINT);
  ASSERT_TRUE(job.wait_exit(0, 30));
  EXPECT_EQ(job.status[0], 130) << job.err[0];
  EXPECT_NE(job.err[0].find("second SIGINT: exiting at once"), std::string::npos) << job.err[0];
  EXPECT_FALSE(file_exists(dir + "/summary.json"));
}

// --- When checkpoints are written ----------------------------------------------------------------

TEST(Checkpoints, ByDefaultEverySixtySecondsNotEveryEpoch) {
  TempDir tmp;
  const std::string dir = golden_run_dir(tmp, "SBW");
  // A run killed after epoch 2 of 3 (a second or so) under the default schedule left no checkpoint.
  const RunResult killed = run_train(golden_run_args(tmp, "SBW", {"--checkpoint_every", "0"}),
                                     tmp.path(), "KHSGD_STOP_AFTER_EPOCH=2");
  ASSERT_EQ(killed.exit_code, 9) << killed.err;
  EXPECT_EQ(read_csv(dir + "/metrics.csv").rows.size(), 2u);
  EXPECT_FALSE(file_exists(dir + "/checkpoint-rank0.bin"));
  // --checkpoint_seconds S: after any epoch S seconds after the last checkpoint (here: each).
  TempDir timed, whole;
  ASSERT_EQ(run_train(golden_run_args(whole, "SBW"), whole.path()).exit_code, 0);
  const std::vector<std::string> every_moment = {"--checkpoint_every", "0", "--checkpoint_seconds",
                                                 "1e-9"};
  ASSERT_EQ(run_train(golden_run_args(timed, "SBW", every_moment), timed.path(),
                      "KHSGD_STOP_AFTER_EPOCH=2")
                .exit_code,
            9);
  EXPECT_TRUE(file_exists(golden_run_dir(timed, "SBW") + "/checkpoint-rank0.bin"));
  std::vector<std::string> resume = every_moment;
  resume.push_back("--resume");
  const RunResult resumed = run_train(golden_run_args(timed, "SBW", resume), timed.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.out.find("resuming after epoch 2"), std::string::npos) << resumed.out;
  expect_same_run(golden_run_dir(timed, "SBW"), golden_run_dir(whole, "SBW"), 1);
}
