#include "khsgd/data/byte_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "khsgd/base/errors.hpp"

namespace khsgd {

std::vector<uint8_t> ByteSource::read(uint64_t at, uint64_t n) const {
  if (!holds(at, n)) throw std::out_of_range("ByteSource::read past the end of the source");
  std::vector<uint8_t> bytes(static_cast<size_t>(n));
  if (n > 0) copy(at, bytes.data(), bytes.size());
  return bytes;
}

FileSource::FileSource(std::string path) : path_(std::move(path)) {
  // O_NONBLOCK: a FIFO named as a data file is refused below instead of blocking the open.
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0)
    throw UserError(path_ + ": cannot be opened for reading (" + std::strerror(errno) + ")");
  struct stat info {};
  if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd_);
    throw UserError(path_ + ": not a regular file");
  }
  size_ = static_cast<uint64_t>(info.st_size);
}

FileSource::FileSource(std::string path, int fd) : path_(std::move(path)), fd_(fd) {
  struct stat info {};
  if (::fstat(fd_, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd_);
    throw UserError(path_ + ": not a regular file");
  }
  size_ = static_cast<uint64_t>(info.st_size);
}

FileSource::~FileSource() { ::close(fd_); }

void FileSource::copy(uint64_t at, uint8_t* out, size_t n) const {
  while (n > 0) {
    const ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(at));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw UserError(path_ + ": read error (" + std::strerror(errno) + ")");
    // The file shrank since it was opened: what its structure declared is no longer there.
    if (got == 0) throw UserError(path_ + ": the file was cut short while being read");
    out += got, at += static_cast<uint64_t>(got), n -= static_cast<size_t>(got);
  }
}

void MemorySource::copy(uint64_t at, uint8_t* out, size_t n) const {
  std::memcpy(out, data_ + at, n);
}

}  // namespace khsgd
