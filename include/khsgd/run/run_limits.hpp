// What a run needs from the machine, checked before it creates or writes anything: a limit the
// run would hit halfway (the open-file limit, memory, the length of a path) is bad input, refused
// with exit 2 and the number needed, instead of a crash or a failed write after files were made.
#pragma once

#include <cstdint>
#include <string>

namespace khsgd {

// Every component of `path` within the file-name limit of its file system (NAME_MAX) and the
// whole within PATH_MAX. Throws UserError naming the component: checked before make_directories
// creates the folders above it.
void check_path_fits(const std::string& path);

// Makes room for `needed` open files at once: raises the soft RLIMIT_NOFILE toward the hard one
// when it is lower; throws UserError with both numbers when even the hard limit is lower.
// `what` says what needs them ("--in_process with 1020 workers").
void reserve_open_files(int64_t needed, const std::string& what);

// Throws UserError when `bytes` more than this process holds now exceed what it can get: its
// address-space limit (ulimit -v) or the memory the system has available (MemAvailable plus free
// swap). `what` names the cause ("--synthetic_rows 1073741824").
void check_memory(int64_t bytes, const std::string& what);

}  // namespace khsgd
