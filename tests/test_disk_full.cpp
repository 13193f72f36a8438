// A write that fails mid-run is an I/O error (exit 1), not bad input: the disk fills up under a
// running job (a small tmpfs in a private mount namespace, filled by another process), the run
// stops naming the file and the reason, keeps its finished epochs and its last checkpoint, and
// --resume continues once there is space again.
#include <unistd.h>

#include <fstream>

#include "reliability.hpp"

using namespace khsgd_test;

TEST(IoFailures, ADiskFullMidRunStopsWithStatusOneAndResumesOnceThereIsSpace) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  if (std::system("unshare -m true 2>/dev/null") != 0)
    GTEST_SKIP() << "no private mount namespace (unshare -m)";
  const int kEpochs = 150;
  TempDir tmp, whole;
  ASSERT_EQ(run_train(golden_run_args(whole, "CD-GraB", {"--checkpoint_every", "0"}, kEpochs),
                      whole.path())
                .exit_code,
            0);

  // Everything that touches the tmpfs happens inside one `unshare -m`: the mount vanishes with it,
  // so the folders are copied out for the checks.
  const std::string disk = tmp / "disk";
  std::vector<std::string> args = golden_run_args(tmp, "CD-GraB", {}, kEpochs);
  for (auto& a : args)
    if (a == tmp / "results") a = disk + "/results";
  std::vector<std::string> resume = args;
  resume.push_back("--resume");
  const std::string metrics =
      disk + "/results/LR-HMDA-150/LR-hmda-CD-GraB-node-1-lr-0.005-B-16-seed-1/metrics.csv";
  const std::string script =
      "mkdir -p " + shell_quote(disk) + " && mount -t tmpfs -o size=64m tmpfs " +
      shell_quote(disk) + " || exit 77\n" + shell_quote(train_binary()) + join_args(args) +
      " >/dev/null 2>" + shell_quote(tmp / "err1") + " &\n" +
      "pid=$!\n"
      "while [ \"$(cat " +
      shell_quote(metrics) +
      " 2>/dev/null | wc -l)\" -lt 4 ] && kill -0 $pid 2>/dev/null; do sleep 0.005; done\n"
      "dd if=/dev/zero of=" +
      shell_quote(disk + "/filler") +
      " bs=64k 2>/dev/null\n"
      "wait $pid; echo $? > " +
      shell_quote(tmp / "status1") + "\n" + "cp -a " + shell_quote(disk + "/results") + " " +
      shell_quote(tmp / "after-failure") + "\n" + "rm " + shell_quote(disk + "/filler") + "\n" +
      shell_quote(train_binary()) + join_args(resume) + " >/dev/null 2>" +
      shell_quote(tmp / "err2") + "\n" + "echo $? > " + shell_quote(tmp / "status2") + "\n" +
      "cp -a " + shell_quote(disk + "/results") + " " + shell_quote(tmp / "final") + "\n";
  std::ofstream(tmp / "disk_full.sh") << script;
  const RunResult r = run_shell(
      "env -u RANK -u WORLD_SIZE -u LOCAL_RANK unshare -m sh " + shell_quote(tmp / "disk_full.sh"),
      tmp.path());
  if (r.exit_code == 77) GTEST_SKIP() << "cannot mount a tmpfs here: " << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // The failing run: status 1, one line naming a file of the run and the system's reason.
  const std::string err = read_file(tmp / "err1");
  EXPECT_EQ(read_file(tmp / "status1"), "1\n") << err;
  EXPECT_EQ(count_lines(err), 1) << err;
  EXPECT_EQ(err.rfind("khsgd_train: I/O error: cannot ", 0), 0u) << err;
  EXPECT_NE(err.find(disk + "/results/LR-HMDA-150/"), std::string::npos) << err;
  EXPECT_NE(err.find(": No space left on device"), std::string::npos) << err;
  // Its finished epochs are intact (whole rows, the uninterrupted run's), its checkpoint is
  // there, no temporary file is left behind.
  const std::string run = "LR-HMDA-150/LR-hmda-CD-GraB-node-1-lr-0.005-B-16-seed-1";
  const auto done = metrics_without_times(tmp / ("after-failure/" + run + "/metrics.csv"));
  const auto expected =
      metrics_without_times(golden_run_dir(whole, "CD-GraB", 1, kEpochs) + "/metrics.csv");
  ASSERT_GE(done.size(), 3u);
  ASSERT_LT(done.size(), static_cast<size_t>(kEpochs))
      << "the disk filled only after the run had finished";
  EXPECT_EQ(done,
            std::vector<std::vector<double>>(expected.begin(), expected.begin() + done.size()));
  EXPECT_TRUE(file_exists(tmp / ("after-failure/" + run + "/checkpoint-rank0.bin")));
  for (const auto& name : list_dir(tmp / ("after-failure/" + run)))
    EXPECT_EQ(name.find(".partial"), std::string::npos) << name;

  // With space again, --resume ends as if nothing had happened.
  EXPECT_EQ(read_file(tmp / "status2"), "0\n") << read_file(tmp / "err2");
  expect_same_run(tmp / ("final/" + run), golden_run_dir(whole, "CD-GraB", 1, kEpochs), 1, kEpochs);
}
