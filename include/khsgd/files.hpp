// Writing files so that a reader never sees half of one: the bottom layer every module uses.
//
// A write that fails once the run has started (disk full, a folder removed under the run) is an
// IoError naming the file and the system's reason; what was written before stays intact.
#pragma once

#include <cstdint>
#include <string>

namespace khsgd {

// Writes `bytes` to path + ".partial", then renames it over `path`. With `durable`, the data is
// synced to disk before the rename, so even a machine crash leaves the old file or the new one.
// Throws IoError naming the file (the temporary is removed, the old file kept).
void write_file_atomically(const std::string& path, const std::string& bytes, bool durable = false);

// An existing file that records are appended to, each with one write(2). A record that cannot
// be written whole is cut off again (IoError), so the file always ends with a complete record.
class AppendFile {
 public:
  explicit AppendFile(const std::string& path);  // IoError if it cannot be opened
  ~AppendFile();
  AppendFile(const AppendFile&) = delete;
  AppendFile& operator=(const AppendFile&) = delete;
  void append(const std::string& text);

 private:
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
};

// Throws IoError: "cannot WHAT 'PATH': strerror(error)".
[[noreturn]] void throw_io_error(const std::string& what, const std::string& path, int error);

// mkdir -p; throws UserError naming the folder when it cannot be created or written (checked at
// the start of a run, where a folder in the way is bad input).
void make_directories(const std::string& path);

}  // namespace khsgd
