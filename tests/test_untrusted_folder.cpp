// The run folder as a trust boundary: a folder prepared by someone else (links, FIFOs, folders or
// hard links where the run's files go) is refused with one line naming the entry, exit 2, without
// blocking and without touching anything outside the folder.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "reliability.hpp"

using namespace khsgd_test;

namespace {

// How a run bounded in time ended: `exited` false when it was still running after the limit (and
// was killed): a run that blocks on a FIFO fails its test instead of hanging it.
struct BoundedRun {
  bool exited = false;
  int status = -1;
  std::string err;
};

BoundedRun run_bounded(const TempDir& tmp, const std::vector<std::string>& args,
                       double limit = 30) {
  Job job(tmp.path());
  job.start(1, args);
  BoundedRun run;
  run.exited = job.wait_exit(0, limit);
  run.status = job.status[0];
  run.err = run.exited ? job.err[0] : read_file(tmp / "err0");
  return run;  // ~Job kills a run still going
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

mode_t mode_of(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0 ? info.st_mode : 0;
}

// The one line that refuses `entry` of `dir`, e.g. "'DIR/.lock' is not a regular file (a FIFO)".
void expect_refused(const BoundedRun& run, const std::string& dir, const std::string& entry,
                    const std::string& why) {
  ASSERT_TRUE(run.exited) << "the run blocked on '" << entry << "': " << run.err;
  EXPECT_EQ(run.status, 2) << run.err;
  EXPECT_EQ(count_lines(run.err), 1) << run.err;
  EXPECT_NE(run.err.find("'" + dir + "/" + entry + "' " + why), std::string::npos) << run.err;
}

const char kPrecious[] = "a file the run must never write\n";

}  // namespace

TEST(UntrustedFolder, LinksInPlaceOfRunFilesAreRefusedAndWhatTheyPointAtIsUntouched) {
  // What a run writes in place (.lock), writes through a temporary (*.partial), or reads.
  for (const std::string entry :
       {".lock", "config.json.partial", "checkpoint-rank0.next.bin.partial", "metrics.csv",
        "summary.json", "time-rank0.csv", "checkpoint-rank0.next.bin", "orders-rank0.csv"}) {
    SCOPED_TRACE(entry);
    TempDir tmp;
    const std::string dir = golden_run_dir(tmp, "D-RR");
    ASSERT_EQ(std::system(("mkdir -p " + shell_quote(dir)).c_str()), 0);
    const std::string outside = tmp / "outside";
    write_text(outside, kPrecious);
    ASSERT_EQ(::chmod(outside.c_str(), 0600), 0);
    ASSERT_EQ(::symlink(outside.c_str(), (dir + "/" + entry).c_str()), 0);
    const BoundedRun run = run_bounded(tmp, golden_run_args(tmp, "D-RR"));
    expect_refused(run, dir, entry, "is not a regular file (a symbolic link)");
    EXPECT_EQ(read_file(outside), kPrecious);
    EXPECT_EQ(mode_of(outside) & 07777, 0600u);
    EXPECT_FALSE(file_exists(dir + "/metrics.csv") && entry != "metrics.csv")
        << "a refused run wrote results";
  }
}

TEST(UntrustedFolder, ALinkInPlaceOfTheTimeFolderIsRefused) {
  TempDir tmp;
  const std::string dir = golden_run_dir(tmp, "SBW");
  ASSERT_EQ(
      std::system(("mkdir -p " + shell_quote(dir) + " " + shell_quote(tmp / "elsewhere")).c_str()),
      0);
  write_text(tmp / "elsewhere/time-0.pt", kPrecious);
  ASSERT_EQ(::symlink((tmp / "elsewhere").c_str(), (dir + "/time").c_str()), 0);
  const BoundedRun run = run_bounded(tmp, golden_run_args(tmp, "SBW"));
  expect_refused(run, dir, "time", "is not a folder (a symbolic link)");
  EXPECT_EQ(read_file(tmp / "elsewhere/time-0.pt"), kPrecious);
  EXPECT_EQ(list_dir(tmp / "elsewhere"), std::vector<std::string>{"time-0.pt"});
}

TEST(UntrustedFolder, ALockFileWithAnotherHardLinkIsRefused) {
  // The lock file is truncated and written in place: a hard link would carry that elsewhere.
  TempDir tmp;
  const std::string dir = golden_run_dir(tmp, "D-RR");
  ASSERT_EQ(std::system(("mkdir -p " + shell_quote(dir)).c_str()), 0);
  write_text(tmp / "outside", kPrecious);
  ASSERT_EQ(::link((tmp / "outside").c_str(), (dir + "/.lock").c_str()), 0);
  const BoundedRun run = run_bounded(tmp, golden_run_args(tmp, "D-RR"));
  expect_refused(run, dir, ".lock", "has 2 hard links");
  EXPECT_EQ(read_file(tmp / "outside"), kPrecious);
}

TEST(UntrustedFolder, FifosAndFoldersInPlaceOfRunFilesAreRefusedWithoutBlocking) {
  // An unfinished run, stopped after epoch 1: --resume reads its checkpoint, its time log and
  // whether summary.json says it finished.
  TempDir tmp;
  const std::string dir = golden_run_dir(tmp, "CD-GraB");
  ASSERT_EQ(
      run_train(golden_run_args(tmp, "CD-GraB"), tmp.path(), "KHSGD_STOP_AFTER_EPOCH=1").exit_code,
      9);
  const std::string before = read_file(dir + "/metrics.csv");
  for (const std::string entry : {"checkpoint-rank0.bin", "summary.json", "time-rank0.csv"}) {
    const std::string path = dir + "/" + entry;
    const bool was_there = file_exists(path);
    if (was_there) { ASSERT_EQ(std::rename(path.c_str(), (tmp / "kept").c_str()), 0); }
    for (const bool fifo : {true, false}) {
      SCOPED_TRACE(entry + (fifo ? " as a FIFO" : " as a folder"));
      ASSERT_EQ(fifo ? ::mkfifo(path.c_str(), 0644) : ::mkdir(path.c_str(), 0755), 0);
      const BoundedRun run = run_bounded(tmp, golden_run_args(tmp, "CD-GraB", {"--resume"}));
      expect_refused(
          run, dir, entry,
          fifo ? "is not a regular file (a FIFO)" : "is not a regular file (a directory)");
      EXPECT_EQ(read_file(dir + "/metrics.csv"), before) << "a refused resume changed the results";
      ASSERT_EQ(fifo ? ::unlink(path.c_str()) : ::rmdir(path.c_str()), 0);
    }
    if (was_there) { ASSERT_EQ(std::rename((tmp / "kept").c_str(), path.c_str()), 0); }
  }
  // Put back, the run resumes.
  const RunResult resumed = run_train(golden_run_args(tmp, "CD-GraB", {"--resume"}), tmp.path());
  EXPECT_EQ(resumed.exit_code, 0) << resumed.err;
}

TEST(UntrustedFolder, AResultsFolderThatIsALinkIsStillUsed) {
  // Only the entries inside the run folder are the boundary: the path the user gives is theirs.
  TempDir tmp;
  ASSERT_EQ(::mkdir((tmp / "disk").c_str(), 0755), 0);
  ASSERT_EQ(::symlink((tmp / "disk").c_str(), (tmp / "results").c_str()), 0);
  const RunResult r = run_train(golden_run_args(tmp, "D-RR"), tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_csv(tmp / "disk/LR-HMDA-3/LR-hmda-D-RR-node-1-lr-0.005-B-16-seed-1/metrics.csv")
                .rows.size(),
            3u);
}

// The folders khsgd names itself below --results_dir (EXP-EPOCHS/RUN) are not followed through a
// link another user planted: the run's files (and --overwrite's deletions) would land where it
// points.
TEST(UntrustedFolder, LinksInPlaceOfTheFoldersKhsgdNamesAreRefused) {
  for (const std::string planted :
       {"results/LR-HMDA-3", "results/LR-HMDA-3/LR-hmda-D-RR-node-1-lr-0.005-B-16-seed-1"}) {
    SCOPED_TRACE(planted);
    TempDir tmp;
    ASSERT_EQ(::mkdir((tmp / "elsewhere").c_str(), 0755), 0);
    const std::string parent = planted.substr(0, planted.rfind('/'));
    ASSERT_EQ(std::system(("mkdir -p " + shell_quote(tmp / parent)).c_str()), 0);
    ASSERT_EQ(::symlink((tmp / "elsewhere").c_str(), (tmp / planted).c_str()), 0);
    const RunResult r = run_train(golden_run_args(tmp, "D-RR"), tmp.path());
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find("'" + tmp / planted + "' is a symbolic link"), std::string::npos) << r.err;
    EXPECT_TRUE(list_dir(tmp / "elsewhere").empty()) << "the run wrote through the link";
  }
}
