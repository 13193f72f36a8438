// Several ranks over c10d's Gloo: the launchers' environments, KH-SGD beyond the reference's one
// rank, and failures that must stop every rank with a clear message.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "helpers.hpp"
#include "khsgd/base/cores.hpp"

using namespace khsgd_test;

namespace {

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

std::vector<std::string> golden_args(const TempDir& tmp, const std::string& sorter) {
  return golden_flags(tmp, sorter, /*epochs=*/2);
}

// metrics.csv without its timing columns, as text: what must not depend on the backend.
std::vector<std::string> metrics_without_times(const std::string& path) {
  std::vector<std::string> rows;
  for (const std::string& line : split(read_file(path), '\n')) {
    const std::vector<std::string> cells = split(line, ',');
    std::string kept;
    for (size_t c = 0; c < cells.size() && c < 5; ++c) kept += (c ? "," : "") + cells[c];
    rows.push_back(kept);
  }
  return rows;
}

std::string run_dir(const TempDir& tmp, const std::string& sorter, int ranks) {
  return golden_run_dir(tmp, sorter, ranks, /*epochs=*/2);
}

// Starts each rank's command line in the background and waits for all; the status is nonzero if
// any rank failed. `rank_env(r)` gives the environment assignments of rank r.
RunResult run_ranks(int ranks, const std::function<std::string(int)>& rank_env,
                    const std::vector<std::string>& args, const std::string& cwd) {
  std::string script = "cd " + shell_quote(cwd) + " && status=0; pids=;";
  for (int r = 0; r < ranks; ++r)
    script += " env -u RANK -u WORLD_SIZE " + rank_env(r) + " " + shell_quote(KHSGD_TRAIN_BINARY) +
              join_args(args) + " & pids=\"$pids $!\";";
  script += " for p in $pids; do wait $p || status=1; done; exit $status";
  return run_shell(script, cwd);
}

}  // namespace

TEST(Distributed, OpenMpiEnvironmentMatchesLaunchScript) {
  // Gloo with the ranks read from mpirun's variables (set by hand here, so --backend auto, which
  // would pick mpi under a real mpirun, is not used).
  TempDir mpi, torchrun_like;
  const int port = free_port();
  std::vector<std::string> args = golden_args(mpi, "SBW");
  args.insert(args.end(), {"--backend", "gloo"});
  const RunResult a = run_ranks(
      2,
      [port](int r) {
        return "OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=" + std::to_string(r) +
               " OMPI_COMM_WORLD_LOCAL_RANK=" + std::to_string(r) +
               " MASTER_PORT=" + std::to_string(port);
      },
      args, mpi.path());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const RunResult b = run_launch(2, golden_args(torchrun_like, "SBW"), torchrun_like.path());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const std::string da = run_dir(mpi, "SBW", 2), db = run_dir(torchrun_like, "SBW", 2);
  EXPECT_EQ(read_csv(da + "/metrics.csv").rows.size(), 2u);
  for (const char* column : {"train_loss", "test_acc"})
    EXPECT_EQ(read_csv(da + "/metrics.csv").at(1, column),
              read_csv(db + "/metrics.csv").at(1, column));
  EXPECT_EQ(read_file(da + "/orders-rank1.csv"), read_file(db + "/orders-rank1.csv"));
  EXPECT_NE(read_file(da + "/config.json").find("\"launcher\": \"mpirun\""), std::string::npos);
}

// Four ranks (two per core here) over gloo, over mpi, and as four workers in one process: the
// same numbers bit for bit, D-RR's four-way sums included (all add the ranks' gradients in rank
// order), and the same files.
// mpi twice: its gathers through the ranks' shared window (the default on one machine; =1 makes
// the run fail where it cannot be opened), and through MPI's messages (KHSGD_MPI_SHARED_MEMORY=0,
// as between machines).
TEST(Distributed, GlooMpiAndInProcessAgreeOnFourRanks) {
  for (const std::string sorter : {"D-RR", "CD-GraB", "KH-SGD"}) {
    SCOPED_TRACE(sorter);
    TempDir over_gloo, over_mpi, over_mpi_messages, in_process;
    const RunResult a = run_launch(4, golden_args(over_gloo, sorter), over_gloo.path());
    ASSERT_EQ(a.exit_code, 0) << a.err;
    std::vector<std::string> workers = golden_args(in_process, sorter);
    workers.insert(workers.end(), {"--node_cnt", "4", "--in_process"});
    const RunResult b = run_train(workers, in_process.path());
    ASSERT_EQ(b.exit_code, 0) << b.err;
    const std::string dg = run_dir(over_gloo, sorter, 4), di = run_dir(in_process, sorter, 4);
    EXPECT_NE(read_file(dg + "/config.json").find("\"backend\": \"gloo\""), std::string::npos);
    EXPECT_NE(read_file(di + "/config.json").find("\"in_process\": true"), std::string::npos);
    EXPECT_EQ(list_dir(di), list_dir(dg));
    std::vector<std::string> others = {di};
    if (mpi_missing().empty()) {
      const RunResult c = run_mpirun(4, golden_args(over_mpi, sorter), over_mpi.path(),
                                     "KHSGD_MPI_SHARED_MEMORY=1");  // the window, or fail
      ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
      others.push_back(run_dir(over_mpi, sorter, 4));
      EXPECT_NE(read_file(others.back() + "/config.json").find("\"backend\": \"mpi\""),
                std::string::npos);
      const RunResult m = run_mpirun(4, golden_args(over_mpi_messages, sorter),
                                     over_mpi_messages.path(), "KHSGD_MPI_SHARED_MEMORY=0");
      ASSERT_EQ(m.exit_code, 0) << m.out << m.err;
      others.push_back(run_dir(over_mpi_messages, sorter, 4));
    }
    for (const std::string& other : others) {
      EXPECT_EQ(metrics_without_times(other + "/metrics.csv"),
                metrics_without_times(dg + "/metrics.csv"))
          << other;
      for (int r = 0; r < 4; ++r) {
        const std::string name = "/orders-rank" + std::to_string(r) + ".csv";
        EXPECT_EQ(read_file(other + name), read_file(dg + name)) << other << name;
      }
    }
  }
}

namespace {

// A CPU list as /proc/PID/status's Cpus_allowed_list writes it ("0-1,4").
std::set<int> cpu_list(const std::string& text) {
  std::set<int> cpus;
  for (const std::string& range : split(text, ',')) {
    const size_t dash = range.find('-');
    const int first = std::stoi(range.substr(0, dash));
    const int last = dash == std::string::npos ? first : std::stoi(range.substr(dash + 1));
    for (int cpu = first; cpu <= last; ++cpu) cpus.insert(cpu);
  }
  return cpus;
}

}  // namespace

// launch.sh --mpi with more ranks than the CPUs it may use has mpirun bind each rank to one core,
// the cores in turn (mpirun leaves such ranks unbound): what lets a rank waiting in the shared
// window tell the ranks on its own core from those running elsewhere. The ranks here are a script
// that writes the CPUs it may run on (one, or a core's hardware threads).
TEST(Distributed, MpiRanksThatOutnumberTheCoresAreBoundOneCoreEachInTurn) {
  if (const std::string missing = mpi_missing(); !missing.empty()) GTEST_SKIP() << missing;
  const int cpus = khsgd::allowed_cores();
  if (cpus < 2) GTEST_SKIP() << "one CPU: no cores to bind ranks apart";
  if (cpus > 16)
    GTEST_SKIP() << cpus << " CPUs: " << 2 * cpus << " processes are more than this check needs";
  TempDir tmp;
  const std::string rank = tmp / "rank.sh";
  std::ofstream(rank) << "#!/bin/sh\n"
                         "sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status "
                         "> cpus-of-rank-$OMPI_COMM_WORLD_RANK\n";
  ASSERT_EQ(chmod(rank.c_str(), 0755), 0);
  const int ranks = 2 * cpus;  // more than launch.sh's nproc, which is this process's CPUs
  const RunResult r =
      run_launch(ranks, {}, tmp.path(), "KHSGD_TRAIN=" + shell_quote(rank), "--mpi");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::vector<std::set<int>> cpus_of;  // rank -> the CPUs it may run on
  std::map<std::set<int>, int> ranks_on;
  for (int k = 0; k < ranks; ++k) {
    const std::string list = read_file(tmp / ("cpus-of-rank-" + std::to_string(k)));
    ASSERT_FALSE(list.empty()) << "rank " << k << " wrote nothing: " << r.out << r.err;
    cpus_of.push_back(cpu_list(list.substr(0, list.find('\n'))));
    ++ranks_on[cpus_of.back()];
  }
  // Bound apart: two ranks' CPUs are the same core's or have none in common, on two cores or more.
  const int used = static_cast<int>(ranks_on.size());
  EXPECT_GE(used, 2) << "every rank may run on the same CPUs: unbound";
  std::map<int, int> bindings_with;  // CPU -> the different bindings that hold it
  for (const auto& binding : ranks_on)
    for (const int cpu : binding.first) ++bindings_with[cpu];
  for (const auto& [cpu, bindings] : bindings_with)
    EXPECT_EQ(bindings, 1) << "CPU " << cpu << " is in overlapping bindings";
  // In turn, and evenly: rank k shares its core with rank k + (the number of cores used).
  for (int k = 0; k + used < ranks; ++k) EXPECT_EQ(cpus_of[k], cpus_of[k + used]) << k;
  for (const auto& [core, count] : ranks_on) {
    EXPECT_GE(count, ranks / used);
    EXPECT_LE(count, (ranks + used - 1) / used);
  }
}

TEST(Distributed, InProcessWorkersNeedOneProcess) {
  TempDir tmp;
  std::vector<std::string> args = golden_args(tmp, "D-RR");
  args.insert(args.end(), {"--node_cnt", "2", "--in_process"});
  const RunResult r = run_launch(2, args, tmp.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--in_process runs every worker in one process, but 2 ranks were launched"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(file_exists(tmp / "results"));
}

TEST(Distributed, MpiBackendNeedsMpirun) {
  TempDir tmp;
  std::vector<std::string> args = golden_args(tmp, "D-RR");
  args.insert(args.end(), {"--backend", "mpi"});
  const RunResult r = run_launch(2, args, tmp.path());
  EXPECT_EQ(r.exit_code, 2);
  const std::string expected = mpi_missing().empty()
                                   ? "--backend mpi needs ranks started by mpirun"
                                   : "--backend mpi is not available in this build";
  EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
  EXPECT_FALSE(file_exists(tmp / "results"));
}

TEST(Distributed, TorchrunAgentStoreIsJoinedAsAClient) {
  // torchrun's elastic agent serves the TCPStore on MASTER_PORT and tells workers so with
  // TORCHELASTIC_USE_AGENT_STORE=True; the workers must not start a server of their own.
  TempDir tmp;
  const int port = free_port();
  const std::string server = shell_quote(KHSGD_STORE_SERVER) + " " + std::to_string(port) + " 60";
  const RunResult r =
      run_shell("cd " + shell_quote(tmp.path()) + " && " + server +
                    " & server=$!; sleep 0.5; status=0; pids=;" +
                    " for rank in 0 1; do env RANK=$rank WORLD_SIZE=2 LOCAL_RANK=$rank "
                    "MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                    std::to_string(port) +
                    " TORCHELASTIC_USE_AGENT_STORE=True TORCHELASTIC_RESTART_COUNT=0 " +
                    shell_quote(KHSGD_TRAIN_BINARY) + join_args(golden_args(tmp, "D-RR")) +
                    " & pids=\"$pids $!\"; done; for p in $pids; do wait $p || status=1; done; "
                    "kill $server; exit $status",
                tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto golden = read_orders(test_data("golden/cpu/n2-D-RR/orders-rank0.csv.gz"));
  const auto ours = read_orders(run_dir(tmp, "D-RR", 2) + "/orders-rank0.csv");
  ASSERT_EQ(ours.size(), 2u);
  EXPECT_EQ(ours[0], golden[0]);
  EXPECT_EQ(ours[1], golden[1]);
}

TEST(Distributed, KernelHalvingRunsOnSeveralRanks) {
  // The reference's KH-SGD indexes past its tables with n > 1; here T = n m / 2.
  TempDir tmp;
  const RunResult r = run_launch(2, golden_args(tmp, "KH-SGD"), tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Csv m = read_csv(run_dir(tmp, "KH-SGD", 2) + "/metrics.csv");
  ASSERT_EQ(m.rows.size(), 2u);
  EXPECT_LT(m.at(1, "train_loss"), 0.40);
  for (int rank = 0; rank < 2; ++rank) {
    const auto orders =
        read_orders(run_dir(tmp, "KH-SGD", 2) + "/orders-rank" + std::to_string(rank) + ".csv");
    ASSERT_EQ(orders.size(), 2u);
    std::vector<int64_t> sorted = orders[1];
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < 10000; ++i) ASSERT_EQ(sorted[i], i);
    EXPECT_NE(orders[1], orders[0]) << "epoch 2 must be reordered";
  }
}

TEST(Distributed, ARankThatCannotLoadItsDataStopsEveryRank) {
  TempDir tmp;
  const int port = free_port();
  // Same flags except the data folder: rank 1 is pointed at a folder without the files.
  std::string wrapped = "cd " + shell_quote(tmp.path()) + " && status=0; pids=;";
  for (int r = 0; r < 2; ++r)
    wrapped += " env RANK=" + std::to_string(r) +
               " WORLD_SIZE=2 MASTER_PORT=" + std::to_string(port) + " " +
               shell_quote(KHSGD_TRAIN_BINARY) + " --data_dir " +
               (r == 0 ? shell_quote(test_data("golden/data")) : shell_quote(tmp / "empty")) +
               " --results_dir " + shell_quote(tmp / "results") + " --epochs 2 --device cpu 2>>" +
               shell_quote(tmp / ("err" + std::to_string(r))) + " & pids=\"$pids $!\";";
  wrapped += " for p in $pids; do wait $p || status=$?; done; exit $status";
  const RunResult r = run_shell(wrapped, tmp.path());
  EXPECT_NE(r.exit_code, 0);
  const std::string err0 = read_file(tmp / "err0"), err1 = read_file(tmp / "err1");
  EXPECT_NE(err1.find("empty/features-processed-NY-2017.pt: file not found"), std::string::npos)
      << err1;
  EXPECT_NE(err0.find("rank 1 could not start"), std::string::npos) << err0;
  EXPECT_EQ(count_lines(err0), 1) << err0;
  EXPECT_FALSE(file_exists(tmp / "results"));
}

TEST(Distributed, RanksWithDifferentFlagsAreRefused) {
  TempDir tmp;
  const int port = free_port();
  std::string script = "cd " + shell_quote(tmp.path()) + " && status=0; pids=;";
  for (int r = 0; r < 2; ++r)
    script +=
        " env RANK=" + std::to_string(r) + " WORLD_SIZE=2 MASTER_PORT=" + std::to_string(port) +
        " " + shell_quote(KHSGD_TRAIN_BINARY) + " --data_dir " +
        shell_quote(test_data("golden/data")) + " --results_dir " + shell_quote(tmp / "results") +
        " --epochs 2 --device cpu --seed " + std::to_string(r + 1) + " 2>>" +
        shell_quote(tmp / ("err" + std::to_string(r))) + " & pids=\"$pids $!\";";
  script += " for p in $pids; do wait $p || status=$?; done; exit $status";
  const RunResult r = run_shell(script, tmp.path());
  EXPECT_EQ(r.exit_code, 2);
  const std::string err0 = read_file(tmp / "err0");
  EXPECT_NE(err0.find("rank 1 was started with different flags or different data"),
            std::string::npos)
      << err0;
  EXPECT_NE(err0.find("--seed differs; here it is '1'"), std::string::npos) << err0;
  EXPECT_EQ(count_lines(err0), 1) << err0;
  EXPECT_FALSE(file_exists(tmp / "results"));
}

TEST(Distributed, NodeCountMustMatchTheWorld) {
  TempDir tmp;
  std::vector<std::string> args = golden_args(tmp, "D-RR");
  args.push_back("--node_cnt");
  args.push_back("4");
  const RunResult r = run_launch(2, args, tmp.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--node_cnt 4 does not match the 2 launched rank(s)"), std::string::npos)
      << r.err;
}

// --- A real torchrun, where one is installed -------------------------------------------------

namespace {

// The same small CPU run under every launcher: two ranks over Gloo on a synthetic set.
std::vector<std::string> torchrun_args(const TempDir& tmp) {
  return {"--dataset",     "synthetic",     "--synthetic_rows", "2000",
          "--sorter",      "CD-GraB",       "--seed",           "1",
          "--lr",          "5e-3",          "--epochs",         "2",
          "--device",      "cpu",           "--backend",        "gloo",
          "--results_dir", tmp / "results", "--save_orders",    "--quiet"};
}

std::string torchrun_run_dir(const TempDir& tmp) {
  return tmp / "results/LR-HMDA-2/LR-synthetic-CD-GraB-node-2-lr-0.005-B-16-seed-1";
}

// torchrun NPROC [stream flags] --no_python BINARY ARGS in `cwd`. PET_MASTER_PORT is torchrun's
// own variable for --master_port: a free port keeps parallel tests apart while the command line
// stays the README's. TMPDIR keeps torchrun's log folder inside `cwd`.
RunResult run_torchrun(int nproc, const std::string& stream_flags, const std::string& binary,
                       const std::vector<std::string>& args, const std::string& cwd) {
  return run_shell("cd " + shell_quote(cwd) +
                       " && env -u RANK -u WORLD_SIZE -u LOCAL_RANK TMPDIR=" + shell_quote(cwd) +
                       " PET_MASTER_PORT=" + std::to_string(free_port()) +
                       " timeout 300 torchrun --nproc_per_node=" + std::to_string(nproc) + " " +
                       stream_flags + " --no_python " + shell_quote(binary) + join_args(args),
                   cwd);
}

// A torchrun that cannot run is a skip, unless KHSGD_REQUIRE_TORCHRUN is set (scripts/test.sh sets
// it for the PyPI build, whose venv has a working torchrun): there a skip would hide a broken one.
// (A macro: GTEST_SKIP and FAIL return from the function they stand in, which must be the test.)
bool torchrun_required() {
  const char* required = std::getenv("KHSGD_REQUIRE_TORCHRUN");
  return required != nullptr && required[0] != '\0' && required[0] != '0';
}
#define KHSGD_SKIP_OR_FAIL(problem)                                                      \
  do {                                                                                   \
    if (torchrun_required())                                                             \
      FAIL() << (problem) << " (KHSGD_REQUIRE_TORCHRUN is set: torchrun must run here)"; \
    GTEST_SKIP() << (problem);                                                           \
  } while (false)

// Why this machine's torchrun cannot run the README's command with `stream_flags`; "" when it
// can (it starts /bin/true as a worker).
std::string torchrun_problem(const std::string& stream_flags) {
  if (std::system("command -v torchrun >/dev/null 2>&1") != 0) return "torchrun is not installed";
  TempDir tmp;
  const RunResult r = run_torchrun(1, stream_flags, "/bin/true", {}, tmp.path());
  if (r.exit_code == 0) return "";
  const std::string output = r.out + r.err;
  if (output.find("unrecognized arguments: --no_python") != std::string::npos)
    return "this torchrun has no --no_python flag: " + output;
  if (output.find("in to_map") != std::string::npos &&
      output.find("'NoneType' object has no attribute 'get'") != std::string::npos)
    return "this is Debian 12's torchrun (PyTorch 1.13 under Python 3.11), which crashes before "
           "starting any worker: AttributeError: 'NoneType' object has no attribute 'get' in "
           "torch/distributed/elastic/multiprocessing/api.py to_map, because Python 3.11 skips the "
           "zero flag Std.NONE when iterating the enum, so --redirects/--tee 0 parse to None. "
           "Torchrun.DebianWorkaroundMatchesLaunchScript runs it with --redirects 1 --tee 1; "
           "scripts/launch.sh and mpirun are unaffected (README, torchrun on Debian 12)";
  ADD_FAILURE() << "torchrun" << stream_flags
                << " failed to start /bin/true for an unknown reason (" << r.exit_code
                << "): " << output;
  return "torchrun failed (see the failure above)";
}

// The torchrun run against the same flags under scripts/launch.sh: identical metrics (timing
// columns apart) and orders on both ranks.
void expect_torchrun_matches_launch_script(const std::string& stream_flags) {
  TempDir by_torchrun, by_script;
  const RunResult t = run_torchrun(2, stream_flags, KHSGD_TRAIN_BINARY, torchrun_args(by_torchrun),
                                   by_torchrun.path());
  ASSERT_EQ(t.exit_code, 0) << t.out << t.err;
  const RunResult s = run_launch(2, torchrun_args(by_script), by_script.path());
  ASSERT_EQ(s.exit_code, 0) << s.err;
  const std::string a = torchrun_run_dir(by_torchrun), b = torchrun_run_dir(by_script);
  const Csv ma = read_csv(a + "/metrics.csv"), mb = read_csv(b + "/metrics.csv");
  ASSERT_EQ(ma.rows.size(), 2u);
  ASSERT_EQ(mb.rows.size(), 2u);
  for (size_t e = 0; e < 2; ++e)
    for (const char* column : {"epoch", "train_loss", "train_acc", "test_loss", "test_acc"})
      EXPECT_EQ(ma.at(e, column), mb.at(e, column)) << column << " of epoch " << e + 1;
  for (const char* orders : {"/orders-rank0.csv", "/orders-rank1.csv"}) {
    EXPECT_EQ(read_orders(a + orders).size(), 2u) << orders;
    EXPECT_EQ(read_file(a + orders), read_file(b + orders)) << orders;
  }
  const std::string config = read_file(a + "/config.json");
  EXPECT_NE(config.find("\"launcher\": \"torchrun\""), std::string::npos) << config;
  EXPECT_NE(config.find("\"world_size\": 2"), std::string::npos) << config;
}

}  // namespace

TEST(Torchrun, ReadmeCommandMatchesLaunchScript) {
  // torchrun --nproc_per_node=2 --no_python build/khsgd_train ...
  const std::string problem = torchrun_problem("");
  if (!problem.empty()) KHSGD_SKIP_OR_FAIL(problem);
  expect_torchrun_matches_launch_script("");
}

TEST(Torchrun, DebianWorkaroundMatchesLaunchScript) {
  // The README's command for Debian 12's torchrun; valid on every torchrun.
  const std::string problem = torchrun_problem("--redirects 1 --tee 1");
  if (!problem.empty()) KHSGD_SKIP_OR_FAIL(problem);
  expect_torchrun_matches_launch_script("--redirects 1 --tee 1");
}
