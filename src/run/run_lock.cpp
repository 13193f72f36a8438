#include "khsgd/run/run_lock.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

#include "khsgd/app/launch.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/base/hash.hpp"
#include "khsgd/data/files.hpp"

namespace khsgd {

namespace {

// What the holder wrote: "host H\npid P\njob J\n".
struct Holder {
  std::string host = "?";
  std::string pid = "?";
  uint64_t job = 0;
  bool known = false;
};

Holder read_holder(int fd) {
  Holder holder;
  char text[512];
  const ssize_t got = ::pread(fd, text, sizeof text - 1, 0);
  if (got <= 0) return holder;
  std::istringstream lines(std::string(text, static_cast<size_t>(got)));
  std::string key, value;
  while (lines >> key >> value) {
    if (key == "host") holder.host = value;
    if (key == "pid") holder.pid = value;
    if (key == "job") {
      holder.job = std::strtoull(value.c_str(), nullptr, 10);
      holder.known = true;
    }
  }
  return holder;
}

// The holder writes its name right after locking; a run refused in between waits a moment for it.
Holder wait_for_holder(int fd) {
  Holder holder = read_holder(fd);
  for (int i = 0; i < 20 && !holder.known; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    holder = read_holder(fd);
  }
  return holder;
}

void write_holder(int fd, const std::string& path, uint64_t job) {
  const std::string text = "host " + this_host() + "\npid " + std::to_string(::getpid()) +
                           "\njob " + std::to_string(job) + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    throw UserError("cannot write the lock file '" + path + "': " + std::strerror(errno));
}

}  // namespace

RunLock::RunLock(RunLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);
}

std::string lock_path(const std::string& dir) { return dir + "/.lock"; }

uint64_t new_job_id() {
  const std::string identity =
      this_host() + "/" + std::to_string(::getpid()) + "/" +
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  return fnv1a64(identity.data(), identity.size()) >> 1;  // travels as a non-negative int64
}

RunLock lock_run_folder(const std::string& dir, uint64_t job) {
  make_directories(dir, kRunFolderOwnParts);
  const std::string path = lock_path(dir);
  // Never through a link, never a FIFO, never a file linked elsewhere (open_regular): the lock
  // file is truncated and written in place, as root as often as not.
  const int fd = open_regular(path, O_RDWR | O_CREAT);
  if (fd < 0) throw UserError("cannot open the lock file '" + path + "': " + std::strerror(errno));
  if (::flock(fd, LOCK_EX | LOCK_NB) == 0) {
    RunLock lock(fd);
    write_holder(fd, path, job);
    return lock;
  }
  const int error = errno;
  if (error != EWOULDBLOCK) {
    ::close(fd);
    spdlog::warn("cannot lock '{}' ({}); nothing keeps a second run off this folder", path,
                 std::strerror(error));
    return RunLock();
  }
  const Holder holder = wait_for_holder(fd);
  ::close(fd);
  if (holder.known && holder.job == job) return RunLock();  // this job's rank 0, same folder
  throw UserError("'" + dir + "' is in use by another run (pid " + holder.pid + " on host " +
                  holder.host +
                  "); wait for it to end or stop it, or choose another --results_dir / --exp");
}

}  // namespace khsgd
