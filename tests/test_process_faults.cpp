// What the process meets around a run rather than in it: a hang-up signal, readers of its output
// that go away, a MASTER_PORT that another program holds or that no other rank joins, a run whose
// loss stops being a number, and memory over many epochs.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "reliability.hpp"

using namespace khsgd_test;

namespace {

// khsgd_train ARGS as one process with `env` (NAME=VALUE) added, stdout to /dev/null and stderr
// to DIR/err, killed after `limit` seconds (a test that would hang fails instead).
struct Finished {
  int status = -1;  // exit status, 128 + signal when killed by one, -1 when it had to be killed
  std::string err;
  double seconds = 0;
  long peak_rss_kib = 0;
};

Finished run_process(const std::vector<std::string>& args, const std::vector<std::string>& env,
                     const std::string& dir, double limit = 60) {
  const std::string errfile = dir + "/err";
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "KHSGD_STOP_AFTER_EPOCH"})
      unsetenv(name);
    for (const std::string& setting : env) putenv(strdup(setting.c_str()));
    if (!freopen(errfile.c_str(), "w", stderr) || !freopen("/dev/null", "w", stdout)) _exit(126);
    std::vector<const char*> argv = {train_binary()};
    for (const auto& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    execv(train_binary(), const_cast<char* const*>(argv.data()));
    _exit(127);
  }
  Finished done;
  while (true) {
    int raw = 0;
    rusage usage{};
    if (wait4(pid, &raw, WNOHANG, &usage) == pid) {
      done.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
      done.peak_rss_kib = usage.ru_maxrss;
      break;
    }
    done.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (done.seconds > limit) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  done.err = read_file(errfile);
  return done;
}

// A program that is not a c10d store, listening on a free port of 127.0.0.1: it greets every
// connection with `greeting` (an ssh server's banner) or, when that is empty, never answers.
class OtherProgram {
 public:
  explicit OtherProgram(std::string greeting) : greeting_(std::move(greeting)) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        listen(listener_, 16) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0)
      throw std::runtime_error("cannot listen");
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~OtherProgram() {
    stop_ = true;
    thread_.join();
    for (const int fd : connections_) close(fd);
    close(listener_);
  }
  int port() const { return port_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd wait{listener_, POLLIN, 0};
      if (poll(&wait, 1, 50) != 1) continue;
      const int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      connections_.push_back(fd);  // kept open: a program that holds its connections
      if (!greeting_.empty()) (void)!send(fd, greeting_.data(), greeting_.size(), MSG_NOSIGNAL);
    }
  }
  std::string greeting_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> connections_;
  std::thread thread_;
};

std::vector<std::string> tiny_run(const TempDir& tmp, int epochs,
                                  std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--dataset",     "synthetic", "--synthetic_rows",
                                   "2000",          "--epochs",  std::to_string(epochs),
                                   "--seed",        "1",         "--results_dir",
                                   tmp / "results", "--device",  "cpu",
                                   "--quiet"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> rank_env(int rank, int port) {
  return {"RANK=" + std::to_string(rank), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1",
          "MASTER_PORT=" + std::to_string(port)};
}

}  // namespace

// --- Signals and pipes ---------------------------------------------------------------------------

TEST(ProcessFaults, SighupStopsCleanlyLikeSigterm) {
  // An ssh connection that drops sends SIGHUP: the run stops after the epoch, with a checkpoint.
  const int kEpochs = 60;
  TempDir tmp;
  const std::string dir = golden_run_dir(tmp, "KH-SGD", 1, kEpochs);
  Job job(tmp.path());
  job.start(1, golden_run_args(tmp, "KH-SGD", {"--checkpoint_every", "0"}, kEpochs));
  ASSERT_TRUE(wait_for_lines(dir + "/metrics.csv", 3));
  job.signal(0, SIGHUP);
  ASSERT_TRUE(job.wait_exit(0, 60));
  EXPECT_EQ(job.status[0], 129) << job.err[0];
  EXPECT_EQ(count_lines(job.err[0]), 1) << job.err[0];
  EXPECT_NE(job.err[0].find("stopped by SIGHUP after epoch "), std::string::npos) << job.err[0];
  EXPECT_NE(job.err[0].find("; --resume continues"), std::string::npos) << job.err[0];
  EXPECT_TRUE(file_exists(dir + "/checkpoint-rank0.bin"));
  EXPECT_FALSE(file_exists(dir + "/summary.json"));
  const RunResult resumed = run_train(
      golden_run_args(tmp, "KH-SGD", {"--checkpoint_every", "0", "--resume"}, kEpochs), tmp.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(read_csv(dir + "/metrics.csv").rows.size(), static_cast<size_t>(kEpochs));
}

TEST(ProcessFaults, AReaderThatGoesAwayDoesNotEndTheRun) {
  // `khsgd_train | head -3`: the reader exits, later writes to the pipe fail. Here the reader
  // (`true`) exits at once, and stdout and stderr both go to it.
  const int kEpochs = 40;
  TempDir tmp;
  std::vector<std::string> args = golden_flags(tmp, "CD-GraB", kEpochs);
  const std::string status = tmp / "status";
  const RunResult piped =
      run_shell("{ env -u RANK -u WORLD_SIZE -u LOCAL_RANK " + shell_quote(train_binary()) +
                    join_args(args) + " 2>&1; echo $? >" + shell_quote(status) + "; } | true",
                tmp.path());
  EXPECT_EQ(read_file(status), "0\n") << "killed by SIGPIPE is 141";
  const std::string dir = golden_run_dir(tmp, "CD-GraB", 1, kEpochs);
  EXPECT_EQ(read_csv(dir + "/metrics.csv").rows.size(), static_cast<size_t>(kEpochs));
  EXPECT_NE(read_file(dir + "/summary.json").find("\"finished\": true"), std::string::npos);
}

TEST(ProcessFaults, ClosedOutputsDoNotEndTheRunNorLandInItsFiles) {
  // `khsgd_train >&- 2>&-`: with no descriptors 1 and 2, the next files opened would get them
  // and the log would be written into them.
  const int kEpochs = 5;
  TempDir tmp;
  const std::string status = tmp / "status";
  run_shell("env -u RANK -u WORLD_SIZE -u LOCAL_RANK " + shell_quote(train_binary()) +
                join_args(golden_flags(tmp, "D-RR", kEpochs)) + " >&- 2>&-; echo $? >" +
                shell_quote(status),
            tmp.path());
  EXPECT_EQ(read_file(status), "0\n");
  const std::string dir = golden_run_dir(tmp, "D-RR", 1, kEpochs);
  // (It went into the folder's .lock and metrics.csv took descriptor 2.)
  for (const char* name : {"/.lock", "/metrics.csv", "/time-rank0.csv", "/orders-rank0.csv"})
    EXPECT_EQ(read_file(dir + name).find("Epoch"), std::string::npos) << name;
  EXPECT_EQ(read_csv(dir + "/metrics.csv").rows.size(), static_cast<size_t>(kEpochs));
  EXPECT_NE(read_file(dir + "/summary.json").find("\"finished\": true"), std::string::npos);
}

// --- Joining ------------------------------------------------------------------------------------

TEST(ProcessFaults, APortHeldByAnotherProgramIsNamed) {
  // c10d's client read the banner as a length and threw std::bad_alloc in its own thread: SIGABRT.
  // A program that never answers held the rank for ever, whatever --timeout said.
  for (const std::string greeting : {"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", ""}) {
    SCOPED_TRACE(greeting.empty() ? "silent" : "banner");
    TempDir tmp;
    OtherProgram other(greeting);
    const Finished rank1 = run_process(tiny_run(tmp, 2, {"--timeout", "3"}),
                                       rank_env(1, other.port()), tmp.path(), 20);
    EXPECT_EQ(rank1.status, 3) << rank1.err;
    EXPECT_EQ(count_lines(rank1.err), 1) << rank1.err;
    EXPECT_NE(rank1.err.find("cannot join the process group at 127.0.0.1:" +
                             std::to_string(other.port())),
              std::string::npos)
        << rank1.err;
    EXPECT_NE(rank1.err.find("is another program using port " + std::to_string(other.port()) + "?"),
              std::string::npos)
        << rank1.err;
    EXPECT_FALSE(file_exists(tmp / "results"));
  }
  // Rank 0 cannot serve there: one line (c10d's own log lines came first).
  TempDir tmp;
  OtherProgram other("");
  const Finished rank0 =
      run_process(tiny_run(tmp, 2, {"--timeout", "3"}), rank_env(0, other.port()), tmp.path(), 20);
  EXPECT_EQ(rank0.status, 3) << rank0.err;
  EXPECT_EQ(count_lines(rank0.err), 1) << rank0.err;
  EXPECT_NE(rank0.err.find("is another program using port " + std::to_string(other.port())),
            std::string::npos)
      << rank0.err;
}

TEST(ProcessFaults, ARankLeftAloneSaysHowManyJoined) {
  TempDir tmp;
  const int port = free_tcp_port(tmp);
  const Finished alone =
      run_process(tiny_run(tmp, 2, {"--timeout", "3"}), rank_env(0, port), tmp.path(), 20);
  EXPECT_EQ(alone.status, 3) << alone.err;
  EXPECT_EQ(count_lines(alone.err), 1) << alone.err;
  EXPECT_NE(alone.err.find("1 of 2 ranks joined within 3 s (--timeout 3)"), std::string::npos)
      << alone.err;
  EXPECT_NE(alone.err.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << alone.err;
  // And a rank whose rank 0 never comes says whom it waited for.
  const Finished waiting =
      run_process(tiny_run(tmp, 2, {"--timeout", "2"}), rank_env(1, port), tmp.path(), 20);
  EXPECT_EQ(waiting.status, 3) << waiting.err;
  EXPECT_NE(waiting.err.find("is rank 0 started"), std::string::npos) << waiting.err;
}

// --- Divergence ---------------------------------------------------------------------------------

TEST(ProcessFaults, ADivergedRunSaysSoOnceAndIsMarked) {
  TempDir tmp;
  const std::string dir =
      tmp / "results/LR-HMDA-4/LR-synthetic-CD-GraB-node-1-lr-1e+308-B-16-seed-1";
  // Stopped (as by a kill) after epoch 2, then resumed: the mark survives the resume.
  const Finished first = run_process(tiny_run(tmp, 4, {"--lr", "1e308", "--checkpoint_every", "1"}),
                                     {"KHSGD_STOP_AFTER_EPOCH=2"}, tmp.path());
  ASSERT_EQ(first.status, 9) << first.err;
  EXPECT_EQ(count_lines(first.err), 1) << first.err;
  EXPECT_NE(first.err.find("warning: training diverged at epoch 1 ("), std::string::npos)
      << first.err;
  EXPECT_NE(first.err.find("--lr 1e+308"), std::string::npos) << first.err;
  const Finished resumed = run_process(
      tiny_run(tmp, 4, {"--lr", "1e308", "--checkpoint_every", "1", "--resume"}), {}, tmp.path());
  EXPECT_EQ(resumed.status, 0)
      << resumed.err;  // every epoch ran; see docs/OPERATIONS.md, exit statuses
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_NE(summary.find("\"finished\": true"), std::string::npos) << summary;
  EXPECT_NE(summary.find("\"diverged\": true"), std::string::npos) << summary;
  EXPECT_NE(summary.find("\"first_nonfinite_epoch\": 1"), std::string::npos) << summary;
  // A sane run says nothing and is not marked.
  const Finished sane = run_process(tiny_run(tmp, 2, {"--lr", "5e-3"}), {}, tmp.path());
  EXPECT_EQ(sane.status, 0) << sane.err;
  EXPECT_EQ(sane.err, "");
  const std::string fine = read_file(
      tmp / "results/LR-HMDA-2/LR-synthetic-CD-GraB-node-1-lr-0.005-B-16-seed-1/summary.json");
  EXPECT_NE(fine.find("\"diverged\": false"), std::string::npos) << fine;
}

// --- Memory -------------------------------------------------------------------------------------

TEST(ProcessFaults, PeakMemoryDoesNotGrowWithTheEpochs) {
  // The reference's result files were rebuilt whole in memory, about 8 KB per epoch: 20 000
  // epochs added 130 MB. 64 rows make an epoch take microseconds.
  auto peak_mib = [](int epochs) {
    TempDir tmp;
    const Finished run = run_process(
        {"--dataset", "synthetic", "--synthetic_rows", "64", "--epochs", std::to_string(epochs),
         "--sorter", "D-RR", "--results_dir", tmp / "results", "--device", "cpu", "--quiet"},
        {}, tmp.path());
    EXPECT_EQ(run.status, 0) << run.err;
    return run.peak_rss_kib / 1024.0;
  };
  const double short_run = peak_mib(200), long_run = peak_mib(2000);
  EXPECT_LT(long_run - short_run, 4.0)
      << short_run << " MiB after 200 epochs, " << long_run << " MiB after 2000";
}
