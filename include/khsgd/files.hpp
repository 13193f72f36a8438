// Writing files so that a reader never sees half of one: the bottom layer every module uses.
#pragma once

#include <string>

namespace khsgd {

// Writes `bytes` to path + ".partial", then renames it over `path`. With `durable`, the data is
// synced to disk before the rename, so even a machine crash leaves the old file or the new one.
// Throws UserError naming the file.
void write_file_atomically(const std::string& path, const std::string& bytes, bool durable = false);

// mkdir -p; throws UserError naming the folder when it cannot be created or written.
void make_directories(const std::string& path);

}  // namespace khsgd
