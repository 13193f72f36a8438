// Writing files so that a reader never sees half of one, and opening them safely: the bottom
// layer every module uses.
//
// A write that fails once the run has started (disk full, a folder removed under the run) is an
// IoError naming the file and the system's reason; what was written before stays intact.
//
// The run folder is a trust boundary: it may have been prepared by another user (a shared
// results tree), and a run is often root's. So every entry a run opens in it is opened without
// following a symbolic link (O_NOFOLLOW) and without blocking (O_NONBLOCK, cleared once open);
// anything but a regular file there (a link, a FIFO, a folder, a device) is refused as bad input
// (UserError, exit 2) naming it, and a file written in place (.lock, the CSVs) must have no other
// hard link. The folder's own path, as the user gave it (--results_dir may be a link), is trusted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace khsgd {

// The advice after "'PATH' is not a regular file (a FIFO); " for an entry of the run folder.
inline constexpr const char* kRunFolderAdvice = "remove it or choose another --exp";

// Opens `path` with `flags` (O_RDONLY, O_WRONLY | O_APPEND, O_RDWR | O_CREAT, ...; created files
// get mode 0644) through the checks above, O_CLOEXEC. Returns the descriptor, or -1 with errno
// set when it cannot be opened (ENOENT: it does not exist). Throws UserError "'PATH' is not a
// regular file (a KIND); ADVICE" for anything else than a regular file, and for a file opened
// for writing that has other hard links.
int open_regular(const std::string& path, int flags, const char* advice = kRunFolderAdvice);

// open_regular(path, O_RDONLY, advice): for readers, inside the run folder or not.
int open_regular_for_read(const std::string& path, const char* advice = kRunFolderAdvice);

// The whole of `path`, opened with open_regular_for_read; nullopt when it does not exist. Throws
// IoError when it cannot be read, UserError when it is not a regular file.
std::optional<std::string> read_regular_file(const std::string& path,
                                             const char* advice = kRunFolderAdvice);

// Whether `path` exists (lstat: a link counts, whatever it points to); throws UserError as
// open_regular does when it exists and is not a regular file. Opens nothing.
bool check_regular_entry(const std::string& path, const char* advice = kRunFolderAdvice);

// mkdir of one folder inside the run folder (DIR/time): it may exist, but as a real folder, not
// a link to one elsewhere. Throws UserError naming it otherwise.
void make_run_subfolder(const std::string& path);

// Writes `bytes` to path + ".partial", then renames it over `path`. With `durable`, the data is
// synced to disk before the rename, so even a machine crash leaves the old file or the new one.
// Throws IoError naming the file (the temporary is removed, the old file kept). The temporary is
// always a new file (a stale one is removed first, then O_CREAT | O_EXCL | O_NOFOLLOW); a `path`
// that exists as anything but a regular file is refused (UserError), as open_regular does.
void write_file_atomically(const std::string& path, const std::string& bytes, bool durable = false);

// An existing file that records are appended to, each with one write(2). A record that cannot
// be written whole is cut off again (IoError), so the file always ends with a complete record.
class AppendFile {
 public:
  // IoError if it cannot be opened; UserError if it is not a regular file (open_regular).
  explicit AppendFile(const std::string& path);
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
// the start of a run, where a folder in the way is bad input). The last `own_parts` parts of
// `path` are folders khsgd names itself (EXP-EPOCHS/RUN under --results_dir): they must be real
// folders, not links someone planted to send the run's files (and --overwrite's deletions)
// elsewhere; the parts the user gave may be links.
void make_directories(const std::string& path, int own_parts = 0);

// The parts of a run folder's path that khsgd names itself (results.cpp run_directory).
inline constexpr int kRunFolderOwnParts = 2;

}  // namespace khsgd
