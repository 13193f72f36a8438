// The zip container of torch.save files (PyTorch >= 1.6): the central directory walked with every
// offset and length checked, records read with their CRC verified. Stored records only: torch.save
// does not compress. Used by the torch.save reader (pt_reader.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace khsgd {

// Throws UserError "PATH: cannot be read as a torch.save file: WHY".
[[noreturn]] void fail_unreadable(const std::string& path, const std::string& why);

struct ZipEntry {
  uint64_t offset = 0;  // of the data
  uint64_t size = 0;
  uint32_t crc = 0;
};

class ZipArchive {
 public:
  // Reads the directory of the archive held in `bytes`; `path` names it in errors.
  ZipArchive(std::string path, std::vector<uint8_t> bytes);

  const std::map<std::string, ZipEntry>& entries() const { return entries_; }

  // The record's bytes, CRC-checked.
  std::vector<uint8_t> read(const std::string& name) const;

 private:
  uint64_t u(uint64_t at, int width) const;  // little-endian field, bounds-checked
  void read_directory();
  // The central directory's location and entry count (through the zip64 records if needed).
  void find_directory(uint64_t* count, uint64_t* dir_size, uint64_t* dir_offset) const;
  // One central-directory entry at `at`; returns the offset of the next one.
  uint64_t read_entry(uint64_t at);

  std::string path_;
  std::vector<uint8_t> bytes_;
  std::map<std::string, ZipEntry> entries_;
};

}  // namespace khsgd
