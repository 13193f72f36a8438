#include "khsgd/run/run_limits.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "khsgd/base/errors.hpp"

namespace khsgd {

namespace {

std::string mib(int64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

// A "Name:  N kB" line of /proc/meminfo, in bytes; -1 when absent.
int64_t meminfo_bytes(const std::string& name) {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == name + ":") return kib * 1024;
  }
  return -1;
}

// This process's virtual size now, in bytes (/proc/self/statm's first field, in pages).
int64_t virtual_size() {
  std::ifstream in("/proc/self/statm");
  int64_t pages = 0;
  in >> pages;
  return pages * ::sysconf(_SC_PAGESIZE);
}

}  // namespace

void check_path_fits(const std::string& path) {
  if (path.size() >= PATH_MAX)
    throw UserError("the results folder '" + path.substr(0, 60) + "...' is " +
                    std::to_string(path.size()) + " bytes long; paths may have at most " +
                    std::to_string(PATH_MAX - 1) + " (shorten --results_dir or --exp)");
  // The longest name the file system takes, asked of the deepest folder that exists already.
  std::string existing = path;
  while (!existing.empty() && ::access(existing.c_str(), F_OK) != 0) {
    const size_t slash = existing.rfind('/');
    existing = slash == std::string::npos ? "" : existing.substr(0, slash);
  }
  const long asked = ::pathconf(existing.empty() ? "." : existing.c_str(), _PC_NAME_MAX);
  const size_t longest = asked > 0 ? static_cast<size_t>(asked) : NAME_MAX;
  for (size_t at = 0; at <= path.size();) {
    size_t end = path.find('/', at);
    if (end == std::string::npos) end = path.size();
    if (end - at > longest)
      throw UserError("the results folder's part '" + path.substr(at, 40) + "...' is " +
                      std::to_string(end - at) + " bytes long; a file name may have at most " +
                      std::to_string(longest) + " (shorten --results_dir or --exp)");
    at = end + 1;
  }
}

void reserve_open_files(int64_t needed, const std::string& what) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;  // nothing known to check against
  const auto enough = static_cast<rlim_t>(needed);
  if (limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur >= enough) return;
  if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < enough)
    throw UserError(what + " needs " + std::to_string(needed) +
                    " open files at once, but this process may open " +
                    std::to_string(limit.rlim_max) +
                    " (ulimit -n; hard limit); raise the limit or run fewer workers per process");
  // The soft limit is a default that a program may raise up to the hard one, as this one does.
  limit.rlim_cur = enough;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0)
    throw UserError(what + " needs " + std::to_string(needed) +
                    " open files at once; raising the limit failed: " + std::strerror(errno));
}

void check_memory(int64_t bytes, const std::string& what) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    const int64_t room = static_cast<int64_t>(limit.rlim_cur) - virtual_size();
    if (bytes > room)
      throw UserError(what + " needs about " + mib(bytes) + " of memory, but this process may " +
                      "take " + mib(room < 0 ? 0 : room) + " more (ulimit -v)");
  }
  const int64_t available = meminfo_bytes("MemAvailable");
  const int64_t swap = meminfo_bytes("SwapFree");
  if (available < 0) return;  // not Linux's /proc: nothing to check against
  const int64_t room = available + (swap > 0 ? swap : 0);
  if (bytes > room)
    throw UserError(what + " needs about " + mib(bytes) + " of memory; this machine has " +
                    mib(room) + " available");
}

}  // namespace khsgd
