#include "khsgd/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "khsgd/errors.hpp"

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

}  // namespace

[[noreturn]] void throw_io_error(const std::string& what, const std::string& path, int error) {
  throw IoError("cannot " + what + " '" + path + "': " + std::strerror(error));
}

void write_file_atomically(const std::string& path, const std::string& bytes, bool durable) {
  const std::string partial = path + ".partial";
  const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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
  fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
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

void make_directories(const std::string& path) {
  std::string prefix;
  size_t at = 0;
  while (at != std::string::npos) {
    at = path.find('/', at + 1);
    prefix = path.substr(0, at);
    if (prefix.empty()) continue;
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
