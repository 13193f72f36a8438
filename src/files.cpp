#include "khsgd/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "khsgd/errors.hpp"

namespace khsgd {

void write_file_atomically(const std::string& path, const std::string& bytes, bool durable) {
  const std::string partial = path + ".partial";
  auto fail = [&](const std::string& what) {
    throw UserError("cannot " + what + " '" + partial + "': " + std::strerror(errno));
  };
  const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("write");
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      errno = saved;
      fail("write");
    }
    written += static_cast<size_t>(n);
  }
  if (durable && ::fdatasync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    errno = saved;
    fail("sync");
  }
  if (::close(fd) != 0) fail("write");
  if (std::rename(partial.c_str(), path.c_str()) != 0)
    throw UserError("cannot rename '" + partial + "' to '" + path + "': " + std::strerror(errno));
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
