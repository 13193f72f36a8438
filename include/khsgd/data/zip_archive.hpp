// The zip container of torch.save files (PyTorch >= 1.6): the central directory walked with every
// offset and length checked, records read with their CRC verified. Stored records only: torch.save
// does not compress. Used by the torch.save reader (pt_reader.cpp).
//
// Only what the structure needs is read, after it is checked against the file's size: the end
// records at the tail, the directory's entries one by one, each record when it is asked for. So a
// huge file that is not a zip archive (or claims more than it holds) is refused without being read
// whole, and no size it declares is allocated before it is known to lie inside the file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "khsgd/data/byte_source.hpp"

namespace khsgd {

// The zip format's CRC-32 (IEEE 802.3) of `size` bytes, continuing `crc` (0 to start): one
// implementation for the reader, the streamed writer (pt_stream.cpp) and the tests' crafted files.
uint32_t crc32_update(uint32_t crc, const uint8_t* data, size_t size);

// Throws UserError "PATH: cannot be read as a torch.save file: WHY".
[[noreturn]] void fail_unreadable(const std::string& path, const std::string& why);

// A name or text from the file as an error message shows it: printable ASCII as it is, any other
// byte as \xNN (so that the message stays one line), at most 80 characters.
std::string shown(const std::string& text);

struct ZipEntry {
  uint64_t offset = 0;  // of the data
  uint64_t size = 0;
  uint32_t crc = 0;
};

class ZipArchive {
 public:
  // Reads the directory of the archive in `source` (kept by reference: it must outlive the
  // archive); `path` names it in errors. Records lie inside the file and do not overlap, so
  // reading every record reads at most the file's size.
  ZipArchive(std::string path, const ByteSource& source);

  const std::map<std::string, ZipEntry>& entries() const { return entries_; }

  // The record's bytes, CRC-checked.
  std::vector<uint8_t> read(const std::string& name) const;

 private:
  // `n` bytes at `at`, or "... points past the end of the file" if they are not all there.
  std::vector<uint8_t> bytes(uint64_t at, uint64_t n) const;
  void read_directory();
  // The central directory's location and entry count (through the zip64 records if needed).
  void find_directory(uint64_t* count, uint64_t* dir_size, uint64_t* dir_offset) const;
  // One central-directory entry at `at`, inside the directory ending at `dir_end`; returns the
  // offset of the next one.
  uint64_t read_entry(uint64_t at, uint64_t dir_end);
  // The record's data offset, from its local header at `local`; checks the record lies inside.
  uint64_t record_data(const std::string& name, uint64_t local, uint64_t size) const;
  void check_no_overlap() const;

  std::string path_;
  const ByteSource& source_;
  std::map<std::string, ZipEntry> entries_;
};

}  // namespace khsgd
