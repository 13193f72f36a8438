// What a run needs from the machine, and what its folder already holds, checked before anything
// is made: the open-file limit, memory for --synthetic_rows, path lengths, text that config.json
// must hold (run_limits.hpp, config.cpp), and --print_run_state, which the sweep asks before it
// reuses a folder (results.hpp).
#include "helpers.hpp"

using namespace khsgd_test;

namespace {

// A synthetic run of `workers` in one process, small enough to take a second.
std::vector<std::string> in_process_args(const TempDir& tmp, int workers) {
  return {"--dataset",
          "synthetic",
          "--synthetic_rows",
          "4000",
          "--epochs",
          "1",
          "--quiet",
          "--in_process",
          "--node_cnt",
          std::to_string(workers),
          "--B",
          std::to_string(2 * workers),
          "--save_orders",
          "--results_dir",
          tmp / "results"};
}

// khsgd_train ARGS under `limits` (ulimit options, set in the shell that starts it).
RunResult run_limited(const std::string& limits, const std::vector<std::string>& args,
                      const TempDir& tmp) {
  return run_shell("cd " + shell_quote(tmp.path()) + " && ulimit " + limits +
                       " && env -u RANK -u WORLD_SIZE -u LOCAL_RANK " +
                       shell_quote(train_binary()) + join_args(args),
                   tmp.path());
}

// Exit 2, one line naming the problem, and nothing made under the temporary folder.
void expect_refused_before_anything(const RunResult& r, const std::string& needle,
                                    const std::string& made) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in " << r.err;
  EXPECT_FALSE(file_exists(made)) << made << " was made by a refused run";
}

}  // namespace

// 64 workers with --save_orders keep 128 logs open: under a hard limit of 100 the run is refused
// before it writes (it used to fail with exit 1 after writing 100 files).
TEST(Limits, MoreOpenFilesThanTheHardLimitAllowsAreRefusedUpFront) {
  TempDir tmp;
  const RunResult r = run_limited("-n 100", in_process_args(tmp, 64), tmp);
  expect_refused_before_anything(r, "--in_process with 64 workers needs 194 open files",
                                 tmp / "results");
  EXPECT_NE(r.err.find("may open 100"), std::string::npos) << r.err;
}

// The soft limit is only a default: the run raises it to what it needs (up to the hard limit).
TEST(Limits, ALowSoftOpenFileLimitIsRaised) {
  TempDir tmp;
  const RunResult r = run_limited("-Sn 100", in_process_args(tmp, 64), tmp);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string run =
      tmp / "results/LR-HMDA-1/LR-synthetic-CD-GraB-node-64-lr-0.01-B-128-seed-0";
  EXPECT_TRUE(file_exists(run + "/summary.json"));
  EXPECT_TRUE(file_exists(run + "/orders-rank63.csv"));
}

// --synthetic_rows at its largest accepted value needs ~280 GiB: refused with the number, not an
// internal std::bad_alloc (exit 1). ulimit -v makes the answer the same on every machine.
TEST(Limits, ASyntheticSetThatCannotFitIsRefusedWithTheMemoryItNeeds) {
  TempDir tmp;
  const RunResult r = run_limited("-v 16000000",
                                  {"--dataset", "synthetic", "--synthetic_rows", "1073741824",
                                   "--epochs", "1", "--quiet", "--results_dir", tmp / "results"},
                                  tmp);
  expect_refused_before_anything(r, "--synthetic_rows 1073741824 needs about 286720 MiB",
                                 tmp / "results");
}

// A file name over the file system's limit deep in --results_dir: refused before the folders
// above it are made (it used to leave them behind, empty).
TEST(Limits, APathPartOverTheNameLimitMakesNoFolders) {
  TempDir tmp;
  const std::string deep = tmp / "a/b/c/d/e/f/g/h/" + std::string(300, 'x') + "/results";
  const RunResult r = run_train({"--dataset", "synthetic", "--synthetic_rows", "64", "--epochs",
                                 "1", "--quiet", "--results_dir", deep},
                                tmp.path());
  expect_refused_before_anything(r, "is 300 bytes long; a file name may have at most", tmp / "a");
}

// --exp names a folder and is written into config.json, which JSON readers (summarize.py) must
// be able to read: bytes that are not UTF-8 are refused.
TEST(Limits, AnExpThatIsNotUtf8IsRefused) {
  TempDir tmp;
  const RunResult r =
      run_train({"--dataset", "synthetic", "--synthetic_rows", "64", "--epochs", "1", "--quiet",
                 "--exp", "run\xff\xfe", "--results_dir", tmp / "results"},
                tmp.path());
  expect_refused_before_anything(r, "--exp is not valid UTF-8", tmp / "results");
  // UTF-8 beyond ASCII is a name like any other.
  const RunResult ok =
      run_train({"--dataset", "synthetic", "--synthetic_rows", "64", "--epochs", "1", "--quiet",
                 "--exp", "Lauf-\xc3\xa4", "--results_dir", tmp / "results"},
                tmp.path());
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

namespace {

std::vector<std::string> state_args(const TempDir& tmp, std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {
      "--dataset", "synthetic",     "--synthetic_rows", "2000", "--epochs",
      "2",         "--quiet",       "--device",         "cpu",  "--sorter",
      "SBW",       "--results_dir", tmp / "results"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace

// What scripts/sweep.sh asks before it reuses a folder: new, finished, resumable or unfinished,
// and a clear refusal naming the flag when the folder's config.json records other flags.
TEST(RunState, NamesWhatTheFolderHoldsAndTheFlagThatDiffers) {
  TempDir tmp;
  auto state = [&](std::vector<std::string> extra) {
    extra.push_back("--print_run_state");
    return run_train(state_args(tmp, extra), tmp.path());
  };
  RunResult r = state({});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "new\n");
  EXPECT_FALSE(file_exists(tmp / "results")) << "--print_run_state writes nothing";

  ASSERT_EQ(run_train(state_args(tmp, {"--checkpoint_every", "1"}), tmp.path()).exit_code, 0);
  r = state({});
  EXPECT_EQ(r.out, "finished\n") << r.err;
  // Flags that do not change what the run computes or records do not count.
  EXPECT_EQ(state({"--timeout", "60", "--checkpoint_every", "5"}).out, "finished\n");

  r = state({"--momentum", "0.5"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("holds a run with other flags (--momentum was '0.9' there, '0.5' here)"),
            std::string::npos)
      << r.err;
  r = state({"--save_orders"});
  EXPECT_NE(r.err.find("--save_orders was 'false' there, 'true' here"), std::string::npos) << r.err;
  // The synthetic set reads no --data_dir, so another one is the same run.
  EXPECT_EQ(state({"--data_dir", "elsewhere"}).out, "finished\n");

  const std::string run = tmp / "results/LR-HMDA-2/LR-synthetic-SBW-node-1-lr-0.01-B-16-seed-0";
  std::remove((run + "/summary.json").c_str());
  EXPECT_EQ(state({}).out, "unfinished\n");  // a finished run keeps no checkpoint
  std::remove((run + "/config.json").c_str());
  EXPECT_EQ(state({}).out, "unfinished\n");  // the resumed run checks its checkpoint instead
}

// The HMDA data: --data_dir is part of the run, so a folder of another data set is not reused.
TEST(RunState, AnotherDataDirIsAnotherRun) {
  TempDir tmp;
  const std::vector<std::string> args = {"--epochs",
                                         "1",
                                         "--quiet",
                                         "--device",
                                         "cpu",
                                         "--data_dir",
                                         test_data("golden/data"),
                                         "--results_dir",
                                         tmp / "results"};
  ASSERT_EQ(run_train(args, tmp.path()).exit_code, 0);
  std::vector<std::string> other = args;
  other[6] = tmp / "other-data";
  other.push_back("--print_run_state");
  const RunResult r = run_train(other, tmp.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--data_dir was '" + test_data("golden/data") + "' there"),
            std::string::npos)
      << r.err;
}
