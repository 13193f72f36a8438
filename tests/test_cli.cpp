// khsgd_train as a user runs it: outputs, determinism, and one clear line for each bad input
// with nothing written.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "helpers.hpp"
#include "khsgd/base/cores.hpp"
#include "khsgd/data/pt_file.hpp"
#include "khsgd/sorting/sorter_registry.hpp"
#include "khsgd/torch/libtorch_log.hpp"

using namespace khsgd_test;

namespace {

const std::string kRun = "results/LR-HMDA-3/LR-hmda-CD-GraB-node-1-lr-0.005-B-16-seed-1";

std::vector<std::string> golden_args(const TempDir& tmp, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"--seed",        "1",
                                   "--lr",          "5e-3",
                                   "--epochs",      "3",
                                   "--data_dir",    test_data("golden/data"),
                                   "--results_dir", tmp / "results",
                                   "--device",      "cpu"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// One line on stderr naming the problem, status 2, and no results folder.
void expect_clean_refusal(const RunResult& result, const TempDir& tmp, const std::string& needle) {
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  EXPECT_EQ(result.err.rfind("khsgd_train: error: ", 0), 0u) << result.err;
  EXPECT_NE(result.err.find(needle), std::string::npos)
      << "expected '" << needle << "' in " << result.err;
  EXPECT_FALSE(file_exists(tmp / "results")) << "a refused run must not create its results folder";
}

}  // namespace

TEST(Cli, HelpListsTheFlags) {
  TempDir tmp;
  const RunResult r = run_train({"--help"}, tmp.path());
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--sorter", "--seed", "--lr", "--B", "--momentum", "--epochs", "--node_cnt", "--backend",
        "--exp", "--local_rank", "--device", "--data_dir", "--results_dir", "--dataset",
        "--save_orders", "--checkpoint_every", "--checkpoint_seconds", "--resume", "--overwrite"})
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  // torchrun's spelling that torch 1.13 and 2.x both accept.
  EXPECT_NE(r.out.find("torchrun --nproc_per_node=N --no_python"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("--no-python"), std::string::npos) << r.out;
}

TEST(Cli, ListSortersPrintsTheRegistryOneTabSeparatedLineEach) {
  TempDir tmp;
  const RunResult r = run_train({"--list-sorters"}, tmp.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, khsgd::sorter_list(/*cuda_only=*/false));
  const std::vector<std::string> names = khsgd::sorter_names();
  ASSERT_EQ(count_lines(r.out), static_cast<int>(names.size()));
  std::stringstream lines(r.out);
  std::string line;
  for (const std::string& name : names) {
    std::getline(lines, line);
    const std::vector<std::string> fields = split(line, '\t');
    ASSERT_EQ(fields.size(), 3u) << line;
    EXPECT_EQ(fields[0], name);
    // The paper's four are marked: D-RR, CD-GraB, SBW, KH-SGD (what sweep.sh runs by default).
    const bool paper = name == "D-RR" || name == "CD-GraB" || name == "SBW" || name == "KH-SGD";
    EXPECT_EQ(fields[2], paper ? "paper" : "baseline") << line;
  }
  // --help names every one of them; --device cuda lists those with a GPU implementation.
  const RunResult help = run_train({"--help"}, tmp.path());
  for (const std::string& name : names) EXPECT_NE(help.out.find(name), std::string::npos) << name;
  const RunResult gpu = run_train({"--list_sorters", "--device", "cuda"}, tmp.path());
  EXPECT_EQ(gpu.exit_code, 0) << gpu.err;
  EXPECT_EQ(gpu.out, khsgd::sorter_list(/*cuda_only=*/true));
  EXPECT_FALSE(file_exists(tmp / "results"));
}

TEST(Cli, PrintRunDirNamesTheFolderAndWritesNothing) {
  TempDir tmp;
  const RunResult r = run_train(golden_args(tmp, {"--print_run_dir"}), tmp.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, tmp / kRun + "\n");
  EXPECT_FALSE(file_exists(tmp / "results"));
  const RunResult ranks = run_train({"--print_run_dir", "--node_cnt", "4", "--sorter", "SBW",
                                     "--lr", "1e-5", "--dataset", "synthetic", "--exp", "W"},
                                    tmp.path());
  EXPECT_EQ(ranks.out, "results/W-50/LR-synthetic-SBW-node-4-lr-1e-05-B-16-seed-0\n") << ranks.err;
}

TEST(Cli, WritesConfigMetricsAndOrders) {
  TempDir tmp;
  const RunResult r = run_train(golden_args(tmp, {"--save_orders"}), tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // One console line per epoch with the full train loss and test accuracy.
  EXPECT_NE(r.out.find("Epoch 1 | full train loss 0.3988"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Epoch 3 | full train loss"), std::string::npos);
  EXPECT_NE(r.out.find("test acc 82.436%"), std::string::npos) << r.out;

  const std::string dir = tmp / kRun;
  // .lock: the run's lock on its folder (run_lock.hpp), kept for the next run to take.
  std::vector<std::string> files = list_dir(dir);
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files,
            (std::vector<std::string>{".lock", "config.json", "metrics.csv", "orders-rank0.csv",
                                      "results.pt", "summary.json", "time", "time-rank0.csv"}));
  EXPECT_EQ(list_dir(dir + "/time"), std::vector<std::string>{"time-0.pt"});
  const std::string summary = read_file(dir + "/summary.json");
  EXPECT_NE(summary.find("\"finished\": true"), std::string::npos) << summary;
  EXPECT_NE(summary.find("\"peak_rss_mib\": "), std::string::npos) << summary;
  const Csv metrics = read_csv(dir + "/metrics.csv");
  EXPECT_EQ(metrics.header,
            (std::vector<std::string>{"epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                                      "train_seconds", "eval_seconds"}));
  ASSERT_EQ(metrics.rows.size(), 3u);
  for (size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(metrics.at(e, "epoch"), e + 1.0);
    EXPECT_GT(metrics.at(e, "train_seconds"), 0.0);
    EXPECT_GT(metrics.at(e, "test_acc"), 0.8);
    EXPECT_LT(metrics.at(e, "test_acc"), 1.0);
  }
  const auto orders = read_orders(dir + "/orders-rank0.csv");
  ASSERT_EQ(orders.size(), 3u);
  for (const auto& order : orders) {
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(sorted.size(), 20000u);
    for (int64_t i = 0; i < 20000; ++i) ASSERT_EQ(sorted[i], i);
  }
  const std::string config = read_file(dir + "/config.json");
  for (const char* field :
       {"\"sorter\": \"CD-GraB\"", "\"seed\": 1", "\"B\": 16", "\"epochs\": 3", "\"node_cnt\": 1",
        "\"world_size\": 1", "\"device\": \"cpu\"", "\"train_rows\": 20011",
        "\"used_train_rows\": 20000", "\"steps_per_epoch\": 1250", "\"libtorch\": \""})
    EXPECT_NE(config.find(field), std::string::npos) << field << " in\n" << config;
}

TEST(Cli, SameSeedTwiceGivesIdenticalMetrics) {
  for (const char* sorter : {"D-RR", "KH-SGD"}) {
    TempDir a, b;
    ASSERT_EQ(run_train(golden_args(a, {"--sorter", sorter, "--save_orders"}), a.path()).exit_code,
              0);
    ASSERT_EQ(run_train(golden_args(b, {"--sorter", sorter, "--save_orders"}), b.path()).exit_code,
              0);
    const std::string run =
        std::string("results/LR-HMDA-3/LR-hmda-") + sorter + "-node-1-lr-0.005-B-16-seed-1";
    const Csv ma = read_csv(a / run + "/metrics.csv"), mb = read_csv(b / run + "/metrics.csv");
    ASSERT_EQ(ma.rows.size(), 3u);
    for (size_t e = 0; e < 3; ++e)
      for (const char* column : {"train_loss", "train_acc", "test_loss", "test_acc"})
        EXPECT_EQ(ma.at(e, column), mb.at(e, column)) << sorter << " " << column;
    EXPECT_EQ(read_file(a / run + "/orders-rank0.csv"), read_file(b / run + "/orders-rank0.csv"));
  }
  // A different seed gives different numbers.
  TempDir c, d;
  ASSERT_EQ(run_train(golden_args(c, {"--sorter", "D-RR"}), c.path()).exit_code, 0);
  std::vector<std::string> other = golden_args(d, {"--sorter", "D-RR"});
  other[1] = "2";
  ASSERT_EQ(run_train(other, d.path()).exit_code, 0);
  EXPECT_NE(read_csv(c / "results/LR-HMDA-3/LR-hmda-D-RR-node-1-lr-0.005-B-16-seed-1/metrics.csv")
                .at(0, "train_loss"),
            read_csv(d / "results/LR-HMDA-3/LR-hmda-D-RR-node-1-lr-0.005-B-16-seed-2/metrics.csv")
                .at(0, "train_loss"));
}

TEST(Cli, SyntheticSetTrainsToTheDocumentedAccuracy) {
  TempDir tmp;
  const RunResult r =
      run_train({"--dataset", "synthetic", "--epochs", "1", "--lr", "5e-3", "--sorter", "KH-SGD",
                 "--results_dir", tmp / "results", "--device", "cpu"},
                tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Csv m = read_csv(
      tmp / "results/LR-HMDA-1/LR-synthetic-KH-SGD-node-1-lr-0.005-B-16-seed-0/metrics.csv");
  ASSERT_EQ(m.rows.size(), 1u);
  EXPECT_GT(m.at(0, "test_acc"), 0.80);
  EXPECT_LT(m.at(0, "test_acc"), 0.86);
}

TEST(Cli, RunsOnTheCudaSavedFixture) {
  TempDir tmp;
  const RunResult r = run_train({"--data_dir", test_data("hmda-small-cuda"), "--epochs", "2",
                                 "--results_dir", tmp / "results", "--device", "cpu"},
                                tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Csv m =
      read_csv(tmp / "results/LR-HMDA-2/LR-hmda-CD-GraB-node-1-lr-0.01-B-16-seed-0/metrics.csv");
  EXPECT_EQ(m.rows.size(), 2u);
}

TEST(Cli, BadFlagsAreOneLineAndWriteNothing) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--sorter", "grab"}, "--sorter 'grab' is not one of"},
      {{"--lr", "0"}, "--lr '0' must be a finite number > 0"},
      {{"--lr", "nan"}, "--lr 'nan'"},
      {{"--epochs", "0"}, "--epochs '0'"},
      {{"--B", "0"}, "--B '0'"},
      {{"--node_cnt", "2"}, "--node_cnt 2 does not match the 1 launched rank(s)"},
      {{"--backend", "nccl", "--device", "cpu"}, "--backend nccl moves GPU memory"},
      {{"--B", "15"}, "must be even"},
      {{"--frobnicate"}, "frobnicate"},
      {{"--dataset", "mnist"}, "--dataset 'mnist'"},
      {{"--in_process"}, "--in_process needs --node_cnt N"},
      {{"--node_cnt", "2", "--in_process", "--backend", "mpi"}, "it takes no --backend"},
      {{"--node_cnt", "3", "--in_process"}, "--B 16 is not divisible by the 3 worker(s)"},
      {{"--node_cnt", "4", "--in_process", "--B", "4"}, "B / workers must be even"},
  };
  for (const auto& [extra, needle] : cases) {
    TempDir tmp;
    SCOPED_TRACE(needle);
    expect_clean_refusal(run_train(golden_args(tmp, extra), tmp.path()), tmp, needle);
  }
}

// OMP_NUM_THREADS caps the threads of a rank (the sorter's walk beside the steps, the evaluation
// split): a malformed value is refused like a bad flag, and a run with it at 1 (everything on one
// core) gives the numbers and orders of runs with more, bit for bit.
TEST(Cli, OmpNumThreadsIsCheckedAndChangesNoNumber) {
  {
    TempDir tmp;
    expect_clean_refusal(run_train(golden_args(tmp), tmp.path(), "OMP_NUM_THREADS=lots"), tmp,
                         "OMP_NUM_THREADS='lots' must be a positive integer");
  }
  if (khsgd::allowed_cores() < 2) GTEST_SKIP() << "one core: every run below is single-threaded";
  std::vector<std::string> metrics;
  for (const std::string env : {"OMP_NUM_THREADS=1", "OMP_NUM_THREADS=4", "-u OMP_NUM_THREADS"}) {
    TempDir tmp;
    const RunResult r = run_train(golden_args(tmp, {"--quiet", "--save_orders"}), tmp.path(), env);
    ASSERT_EQ(r.exit_code, 0) << env << ": " << r.err;
    std::istringstream lines(read_file(tmp / (kRun + "/metrics.csv")));
    std::string line, losses;
    while (std::getline(lines, line)) {  // every column but the seconds
      const auto columns = split(line, ',');
      ASSERT_GE(columns.size(), 5u) << line;
      losses += columns[0] + columns[1] + columns[2] + columns[3] + columns[4] + "\n";
    }
    // results.pt holds the losses and accuracies as doubles: their last bits too.
    metrics.push_back(losses + read_file(tmp / (kRun + "/orders-rank0.csv")) +
                      read_file(tmp / (kRun + "/results.pt")));
  }
  EXPECT_EQ(metrics[0], metrics[1]);
  EXPECT_EQ(metrics[0], metrics[2]);
}

TEST(Cli, VersionNamesTheBackendsOfThisBuild) {
  TempDir tmp;
  const RunResult r = run_train({"--version"}, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t at = r.out.find("backends: ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string backends = r.out.substr(at);
  EXPECT_NE(backends.find("gloo"), std::string::npos) << r.out;
#ifdef KHSGD_WITH_MPI
  EXPECT_NE(backends.find("mpi"), std::string::npos) << r.out;
#else
  EXPECT_EQ(backends.find("mpi"), std::string::npos) << r.out;
#endif
}

// khsgd_train copied without the khsgd_train_run it hands the LibTorch runs to: the questions it
// answers and the runs it makes itself still work; a run that needs LibTorch (KH-SGD's log table,
// in builds whose LibTorch's logs khsgd cannot take itself) and --version say in one line what is
// missing (127), and write nothing.
TEST(Cli, TheFrontAloneSaysItsRunBinaryIsMissing) {
  TempDir tmp;
  const std::string alone = tmp / "khsgd_train";
  ASSERT_EQ(run_shell("cp " + shell_quote(train_binary()) + " " + shell_quote(alone), tmp.path())
                .exit_code,
            0);
  const RunResult list = run_shell(shell_quote(alone) + " --list-sorters", tmp.path());
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out, khsgd::sorter_list(/*cuda_only=*/false));
  TempDir own_dir;
  const RunResult own = run_shell("env -u RANK -u WORLD_SIZE " + shell_quote(alone) +
                                      join_args(golden_args(own_dir, {"--sorter", "D-RR"})),
                                  own_dir.path());
  EXPECT_EQ(own.exit_code, 0) << own.err;
  // KH-SGD needs LibTorch only where its log table cannot be had without (libtorch_log.hpp).
  std::vector<std::vector<std::string>> needing_libtorch = {{"--version"}};
  if (!khsgd::libtorch_log_without_libtorch()) {
    needing_libtorch.push_back(golden_args(tmp, {"--sorter", "KH-SGD"}));
  } else {
    TempDir kh_dir;
    const RunResult kh = run_shell("env -u RANK -u WORLD_SIZE " + shell_quote(alone) +
                                       join_args(golden_args(kh_dir, {"--sorter", "KH-SGD"})),
                                   kh_dir.path());
    EXPECT_EQ(kh.exit_code, 0) << kh.err;
  }
  for (const std::vector<std::string>& args : needing_libtorch) {
    const RunResult r =
        run_shell("env -u RANK -u WORLD_SIZE " + shell_quote(alone) + join_args(args), tmp.path());
    EXPECT_EQ(r.exit_code, 127) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("cannot start " + tmp / "khsgd_train_run"), std::string::npos) << r.err;
    EXPECT_FALSE(file_exists(tmp / "results")) << r.err;
  }
}

// Which runs load LibTorch (trainer.hpp's run_needs_libtorch), seen in the dynamic loader's own
// log: one rank and --in_process workers on the CPU never do (KH-SGD only where its log table
// is LibTorch's own to compute); gloo with two ranks' flags and --version do, through
// khsgd_train_run.
TEST(Cli, OnlyRunsThatNeedLibTorchLoadIt) {
  auto loads_libtorch = [](const RunResult& r) {
    return r.err.find("libc10") != std::string::npos;
  };
  auto run_logged = [](const std::vector<std::string>& flags) {
    TempDir tmp;
    return run_shell("env -u RANK -u WORLD_SIZE LD_DEBUG=files " + shell_quote(train_binary()) +
                         join_args(golden_args(tmp, flags)),
                     tmp.path());
  };
  for (const char* sorter : {"D-RR", "CD-GraB", "SBW", "GraB"}) {
    const RunResult r = run_logged({"--sorter", sorter});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_FALSE(loads_libtorch(r)) << sorter << " loaded LibTorch";
  }
  const RunResult workers = run_logged({"--sorter", "CD-GraB", "--node_cnt", "2", "--in_process"});
  EXPECT_EQ(workers.exit_code, 0) << workers.err;
  EXPECT_FALSE(loads_libtorch(workers)) << "--in_process loaded LibTorch";
  const RunResult kh = run_logged({"--sorter", "KH-SGD"});
  EXPECT_EQ(kh.exit_code, 0) << kh.err;
  if (khsgd::libtorch_log_without_libtorch()) {
    EXPECT_FALSE(loads_libtorch(kh)) << "KH-SGD's log table is Sleef's in this build";
  } else {
    EXPECT_TRUE(loads_libtorch(kh)) << "KH-SGD's log table is LibTorch's";
  }
  TempDir tmp;
  const RunResult version =
      run_shell("LD_DEBUG=files " + shell_quote(train_binary()) + " --version", tmp.path());
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_TRUE(loads_libtorch(version));
}

TEST(Cli, MpiBackendInOnePlainProcessNeedsNoMpirun) {
#ifndef KHSGD_WITH_MPI
  GTEST_SKIP() << "this build has no mpi backend";
#endif
  TempDir tmp;
  const RunResult r = run_train(golden_args(tmp, {"--backend", "mpi"}), tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

TEST(Cli, CudaOnACpuBuildIsAClearError) {
#ifdef KHSGD_WITH_CUDA
  GTEST_SKIP() << "this build has CUDA";
#endif
  TempDir tmp;
  expect_clean_refusal(run_train(golden_args(tmp, {"--device", "cuda"}), tmp.path()), tmp,
                       "--device cuda: this build has no CUDA support");
}

TEST(Cli, BadDataIsOneLineAndWritesNothing) {
  {
    TempDir tmp;
    expect_clean_refusal(run_train({"--data_dir", tmp / "nowhere", "--results_dir", tmp / "results",
                                    "--device", "cpu"},
                                   tmp.path()),
                         tmp, "nowhere/features-processed-NY-2017.pt: file not found");
  }
  {
    TempDir tmp;
    // Real features, labels with a 2 in them.
    khsgd::HostTensor train_y, test_y;
    train_y.shape = {20011};
    train_y.values.assign(20011, 1.0f);
    train_y.values[17] = 2.0f;
    test_y.shape = {4999};
    test_y.values.assign(4999, 0.0f);
    std::system(("mkdir -p " + shell_quote(tmp / "data") + " && cp " +
                 shell_quote(test_data("golden/data/features-processed-NY-2017.pt")) + " " +
                 shell_quote(tmp / "data/"))
                    .c_str());
    khsgd::write_tensor_tuple(tmp / "data/targets-processed-NY-2017.pt", {train_y, test_y});
    expect_clean_refusal(
        run_train({"--data_dir", tmp / "data", "--results_dir", tmp / "results", "--device", "cpu"},
                  tmp.path()),
        tmp, "train_y[17] = 2, expected labels in {0, 1}");
  }
}

TEST(Cli, UnwritableResultsFolderIsAClearError) {
  TempDir tmp;
  std::ofstream(tmp / "results") << "a file where the folder should be";
  const RunResult r = run_train(golden_args(tmp), tmp.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("cannot create results folder"), std::string::npos) << r.err;
}

TEST(Cli, TimeBreakdownPerEpochAndRank) {
  for (const bool profile : {false, true}) {
    TempDir tmp;
    std::vector<std::string> extra = {"--sorter", "KH-SGD"};
    if (profile) extra.push_back("--profile");
    const RunResult r = run_train(golden_args(tmp, extra), tmp.path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const Csv t = read_csv(
        tmp / "results/LR-HMDA-3/LR-hmda-KH-SGD-node-1-lr-0.005-B-16-seed-1/time-rank0.csv");
    EXPECT_EQ(t.header,
              (std::vector<std::string>{"epoch", "sorter", "communication", "dataset",
                                        "forward_backward", "sgd", "train_seconds", "estimated"}));
    ASSERT_EQ(t.rows.size(), 3u);
    for (size_t e = 0; e < 3; ++e) {
      double parts = 0;
      for (const char* c : {"sorter", "communication", "dataset", "forward_backward", "sgd"}) {
        EXPECT_GE(t.at(e, c), 0.0) << c;
        parts += t.at(e, c);
      }
      EXPECT_GT(t.at(e, "forward_backward"), 0.0);
      EXPECT_GT(t.at(e, "sorter"), 0.0);
      EXPECT_EQ(t.at(e, "estimated"), profile ? 0.0 : 1.0);
      if (profile) { EXPECT_LE(parts, t.at(e, "train_seconds") * 1.001); }
    }
  }
}

TEST(Cli, ProgressBarOnATerminalAndQuietTurnsItOff) {
  if (std::system("command -v script >/dev/null 2>&1") != 0) GTEST_SKIP() << "no script(1)";
  TempDir tmp;
  // script(1) gives the run a pseudo-terminal, as an interactive shell would.
  const std::string line = shell_quote(KHSGD_TRAIN_BINARY) + join_args(golden_args(tmp));
  const RunResult bar = run_shell("script -qfec " + shell_quote(line) + " /dev/null", tmp.path());
  ASSERT_EQ(bar.exit_code, 0) << bar.out;
  EXPECT_NE(bar.out.find("[########################] 100% epoch 3/3, 60.0k/60.0k examples"),
            std::string::npos)
      << bar.out;
  EXPECT_NE(bar.out.find(" ex/s, ETA "), std::string::npos);
  EXPECT_NE(bar.out.find(", loss 0."), std::string::npos);
  TempDir quiet_tmp;
  const std::string quiet =
      shell_quote(KHSGD_TRAIN_BINARY) + join_args(golden_args(quiet_tmp, {"--quiet"}));
  const RunResult off =
      run_shell("script -qfec " + shell_quote(quiet) + " /dev/null", quiet_tmp.path());
  ASSERT_EQ(off.exit_code, 0);
  EXPECT_EQ(off.out.find("ex/s"), std::string::npos) << off.out;
  EXPECT_NE(off.out.find("Epoch 3 | full train loss"), std::string::npos);
}

TEST(Cli, SaveGradsListsAreChecked) {
  for (const auto& [value, needle] :
       std::vector<std::pair<std::string, std::string>>{{"0", "'0' is out of range"},
                                                        {"4", "'4' is out of range"},
                                                        {"2-1", "'2-1' is out of range"},
                                                        {"x", "'x' is not an epoch"},
                                                        {"1,,2", "'' is not an epoch"}}) {
    TempDir tmp;
    SCOPED_TRACE(value);
    expect_clean_refusal(run_train(golden_args(tmp, {"--save_grads", value}), tmp.path()), tmp,
                         needle);
  }
  TempDir tmp;
  ASSERT_EQ(run_train(golden_args(tmp, {"--save_grads", "1,3", "--sorter", "D-RR"}), tmp.path())
                .exit_code,
            0);
  const auto files = list_dir(tmp / "results/LR-HMDA-3/LR-hmda-D-RR-node-1-lr-0.005-B-16-seed-1");
  EXPECT_NE(std::find(files.begin(), files.end(), "grads-epoch1.pt"), files.end());
  EXPECT_EQ(std::find(files.begin(), files.end(), "grads-epoch2.pt"), files.end());
  EXPECT_NE(std::find(files.begin(), files.end(), "grads-epoch3.pt"), files.end());
}
