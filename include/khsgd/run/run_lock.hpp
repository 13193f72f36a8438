// One run per results folder: a run holds an exclusive lock on DIR/.lock for its whole life, so
// that a second run started on the same folder (plain, --resume or --overwrite, by hand or by a
// second sweep) is refused before it reads or writes anything there.
//
// flock(2): the kernel drops the lock when the process ends however it ends, so a killed run
// never leaves a stale lock behind. The holder writes its host, pid and job into the file, which
// the refusal names. Ranks of one job on another host lock that host's copy of the folder; when
// the hosts share the folder (one file system), they find their own job's lock and go on.
#pragma once

#include <cstdint>
#include <string>

namespace khsgd {

class RunLock {
 public:
  RunLock() = default;
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();  // releases the lock (the file stays: removing it would race a waiting run)

  bool held() const { return fd_ >= 0; }

 private:
  friend RunLock lock_run_folder(const std::string& dir, uint64_t job);
  explicit RunLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Creates `dir` (UserError when it cannot) and locks DIR/.lock for the job `job` (the same number
// on every rank of a run). Throws UserError "'DIR' is in use by another run (pid P on host H) ..."
// when another job holds it. Returns a lock that holds nothing when `job` itself holds it (a rank
// on another host sharing the folder) or when the file system cannot lock (with a warning).
RunLock lock_run_folder(const std::string& dir, uint64_t job);

// A number naming this process's run among all others: hash of host, pid and start time.
uint64_t new_job_id();

// DIR/.lock
std::string lock_path(const std::string& dir);

}  // namespace khsgd
