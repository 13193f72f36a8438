#include "khsgd/data/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "khsgd/base/errors.hpp"

namespace khsgd {

namespace {

// Writes all of `bytes` to `fd`, retrying short writes; false with errno set on failure.
bool write_all(int fd, const char* bytes, size_t size) {
  size_t written = 0;
  while (written < size) {
    const ssize_t n = ::write(fd, bytes + written, size - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    written += static_cast<size_t>(n);
  }
  return true;
}

// "a FIFO", "a directory", ...: what an entry is, for the error that refuses it.
const char* kind_of(mode_t mode) {
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "of an unknown kind";
}

[[noreturn]] void refuse_entry(const std::string& path, mode_t mode, const char* advice) {
  throw UserError("'" + path + "' is not a regular file (" + kind_of(mode) + "); " + advice);
}

// After a failed open: an entry that exists as something else than a regular file is refused
// (O_NOFOLLOW fails a link with ELOOP, a FIFO without reader opened for writing gives ENXIO, a
// folder opened for writing EISDIR, O_EXCL any existing entry EEXIST); else errno is kept.
void refuse_if_irregular(const std::string& path, const char* advice) {
  const int error = errno;
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0 && !S_ISREG(info.st_mode))
    refuse_entry(path, info.st_mode, advice);
  errno = error;
}

}  // namespace

int open_regular(const std::string& path, int flags, const char* advice) {
  // O_NONBLOCK: a FIFO would block the open until a writer (or reader) comes; a regular file
  // ignores it, and it is cleared below so that later reads and writes behave as usual.
  const int fd = ::open(path.c_str(), flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
  if (fd < 0) {
    refuse_if_irregular(path, advice);
    return -1;
  }
  // Checked on the open file, not on the name: nothing can swap the entry in between.
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    throw_io_error("open", path, error);
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    refuse_entry(path, info.st_mode, advice);
  }
  if ((flags & O_ACCMODE) != O_RDONLY && info.st_nlink > 1) {
    ::close(fd);
    throw UserError("'" + path + "' has " + std::to_string(info.st_nlink) +
                    " hard links (writing it would change a file elsewhere); " + advice);
  }
  const int status = ::fcntl(fd, F_GETFL);
  if (status < 0 || ::fcntl(fd, F_SETFL, status & ~O_NONBLOCK) != 0) {
    const int error = errno;
    ::close(fd);
    throw_io_error("open", path, error);
  }
  return fd;
}

int open_regular_for_read(const std::string& path, const char* advice) {
  return open_regular(path, O_RDONLY, advice);
}

std::optional<std::string> read_regular_file(const std::string& path, const char* advice) {
  const int fd = open_regular_for_read(path, advice);
  if (fd < 0 && errno == ENOENT) return std::nullopt;
  if (fd < 0) throw_io_error("read", path, errno);
  std::string text;
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      throw_io_error("read", path, error);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

bool check_regular_entry(const std::string& path, const char* advice) {
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0) return false;
  if (!S_ISREG(info.st_mode)) refuse_entry(path, info.st_mode, advice);
  return true;
}

void make_run_subfolder(const std::string& path) {
  if (::mkdir(path.c_str(), 0777) != 0 && errno != EEXIST)
    throw UserError("cannot create results folder '" + path + "': " + std::strerror(errno));
  // lstat: a link to a folder elsewhere would send the files written into it there.
  struct stat info {};
  if (::lstat(path.c_str(), &info) != 0)
    throw UserError("cannot create results folder '" + path + "': " + std::strerror(errno));
  if (!S_ISDIR(info.st_mode))
    throw UserError("'" + path + "' is not a folder (" + kind_of(info.st_mode) + "); " +
                    kRunFolderAdvice);
}

[[noreturn]] void throw_io_error(const std::string& what, const std::string& path, int error) {
  throw IoError("cannot " + what + " '" + path + "': " + std::strerror(error));
}

void write_file_atomically(const std::string& path, const std::string& bytes, bool durable) {
  // rename() replaces a link or a FIFO at `path` without following or opening it, but such an
  // entry is not ours to replace: refuse it as open_regular does.
  check_regular_entry(path);
  const std::string partial = path + ".partial";
  // Always a new file: a stale temporary (a crash's, or a link someone left there) is removed
  // first (a link goes, not what it points to), and O_EXCL fails rather than open what may have
  // taken its place since.
  if (::unlink(partial.c_str()) != 0 && errno != ENOENT) {
    // A folder of that name cannot be unlinked: the open below fails and names it.
  }
  const int fd = open_regular(partial, O_WRONLY | O_CREAT | O_EXCL);
  if (fd < 0) throw_io_error("write", path, errno);
  // On failure the half-written temporary goes (it would hold the space a full disk lacks); the
  // file at `path`, if any, is untouched.
  auto fail = [&](const char* what) {
    const int error = errno;
    ::close(fd);
    ::unlink(partial.c_str());
    throw_io_error(what, path, error);
  };
  if (!write_all(fd, bytes.data(), bytes.size())) fail("write");
  if (durable && ::fdatasync(fd) != 0) fail("sync");
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(partial.c_str());
    throw_io_error("write", path, error);
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(partial.c_str());
    throw IoError("cannot rename '" + partial + "' to '" + path + "': " + std::strerror(error));
  }
}

AppendFile::AppendFile(const std::string& path) : path_(path) {
  fd_ = open_regular(path, O_WRONLY | O_APPEND);
  if (fd_ < 0) throw_io_error("open", path, errno);
  const off_t end = ::lseek(fd_, 0, SEEK_END);
  if (end < 0) {
    const int error = errno;
    ::close(fd_);
    throw_io_error("open", path, error);
  }
  size_ = end;
}

AppendFile::~AppendFile() {
  if (fd_ >= 0) ::close(fd_);
}

void AppendFile::append(const std::string& text) {
  if (write_all(fd_, text.data(), text.size())) {
    size_ += static_cast<int64_t>(text.size());
    return;
  }
  // A full disk can take part of the text: cut it off again, so the file ends with the last
  // complete record.
  const int error = errno;
  if (::ftruncate(fd_, size_) != 0) {
    // Nothing more to do: the reader of a damaged tail is the resumed run, which rewrites it.
  }
  throw_io_error("append to", path_, error);
}

// The run folder's own path, as the user gave it, may pass through links (a --results_dir on
// another disk, linked into place): stat, not lstat. Only the entries inside it are checked.
void make_directories(const std::string& path, int own_parts) {
  // Where the parts khsgd names begin: after the slash `own_parts` slashes from the end.
  size_t own_from = path.size();
  for (int part = 0; part < own_parts && own_from != std::string::npos && own_from > 0; ++part)
    own_from = path.rfind('/', own_from - 1);
  std::string prefix;
  size_t at = 0;
  while (at != std::string::npos) {
    at = path.find('/', at + 1);
    prefix = path.substr(0, at);
    if (prefix.empty()) continue;
    struct stat entry {};
    // Checked before anything is made in it: a planted link is refused with nothing written.
    if (own_from != std::string::npos && prefix.size() > own_from &&
        ::lstat(prefix.c_str(), &entry) == 0 && S_ISLNK(entry.st_mode))
      throw UserError("'" + prefix + "' is a symbolic link, but khsgd names and makes this " +
                      "folder itself: remove the link (check what it points at), or use another " +
                      "--results_dir / --exp");
    if (::mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST)
      throw UserError("cannot create results folder '" + prefix + "': " + std::strerror(errno));
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))
    throw UserError("results folder '" + path + "' is not a folder");
  if (::access(path.c_str(), W_OK) != 0)
    throw UserError("results folder '" + path + "' is not writable: " + std::strerror(errno));
}

}  // namespace khsgd
