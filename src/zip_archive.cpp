#include "khsgd/zip_archive.hpp"

#include <array>

#include "khsgd/errors.hpp"

namespace khsgd {

namespace {

uint32_t crc32(const uint8_t* data, size_t size) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

constexpr uint64_t kNoSize32 = 0xFFFFFFFFu;  // "see the zip64 record" in a 32-bit field

}  // namespace

void fail_unreadable(const std::string& path, const std::string& why) {
  throw UserError(path + ": cannot be read as a torch.save file: " + why);
}

ZipArchive::ZipArchive(std::string path, std::vector<uint8_t> bytes)
    : path_(std::move(path)), bytes_(std::move(bytes)) {
  read_directory();
}

std::vector<uint8_t> ZipArchive::read(const std::string& name) const {
  const auto found = entries_.find(name);
  if (found == entries_.end()) fail_unreadable(path_, "the archive has no record '" + name + "'");
  const ZipEntry& e = found->second;
  const uint8_t* data = bytes_.data() + e.offset;
  if (crc32(data, e.size) != e.crc)
    fail_unreadable(path_, "record '" + name + "' is damaged (CRC mismatch)");
  return std::vector<uint8_t>(data, data + e.size);
}

uint64_t ZipArchive::u(uint64_t at, int width) const {
  if (at > bytes_.size() || static_cast<uint64_t>(width) > bytes_.size() - at)
    fail_unreadable(path_, "the zip structure points past the end of the file (truncated?)");
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = (value << 8) | bytes_[at + i];
  return value;
}

void ZipArchive::find_directory(uint64_t* count, uint64_t* dir_size, uint64_t* dir_offset) const {
  // End of central directory: 22 bytes plus a comment of at most 64 KiB, at the end.
  if (bytes_.size() < 22) fail_unreadable(path_, "too short for a zip archive");
  const uint64_t lowest = bytes_.size() > 22 + 65535 ? bytes_.size() - 22 - 65535 : 0;
  uint64_t eocd = bytes_.size() - 22;
  while (u(eocd, 4) != 0x06054b50u) {
    if (eocd == lowest) fail_unreadable(path_, "no zip end-of-directory record (truncated?)");
    --eocd;
  }
  *count = u(eocd + 10, 2);
  *dir_size = u(eocd + 12, 4);
  *dir_offset = u(eocd + 16, 4);
  if (*count == 0xFFFF || *dir_size == kNoSize32 || *dir_offset == kNoSize32) {
    // Zip64: the locator just before the end record points at the zip64 end record.
    if (eocd < 20 || u(eocd - 20, 4) != 0x07064b50u)
      fail_unreadable(path_, "zip64 locator missing");
    const uint64_t end64 = u(eocd - 20 + 8, 8);
    if (u(end64, 4) != 0x06064b50u) fail_unreadable(path_, "zip64 end record missing");
    *count = u(end64 + 32, 8);
    *dir_size = u(end64 + 40, 8);
    *dir_offset = u(end64 + 48, 8);
  }
}

void ZipArchive::read_directory() {
  uint64_t count = 0, dir_size = 0, dir_offset = 0;
  find_directory(&count, &dir_size, &dir_offset);
  if (dir_offset > bytes_.size() || dir_size > bytes_.size() - dir_offset)
    fail_unreadable(path_, "the central directory lies outside the file");
  if (count > dir_size / 46)
    fail_unreadable(path_, "the entry count does not fit the central directory");
  uint64_t at = dir_offset;
  for (uint64_t i = 0; i < count; ++i) at = read_entry(at);
}

uint64_t ZipArchive::read_entry(uint64_t at) {
  if (u(at, 4) != 0x02014b50u) fail_unreadable(path_, "a central directory entry is damaged");
  const uint64_t method = u(at + 10, 2);
  const uint32_t crc = static_cast<uint32_t>(u(at + 16, 4));
  uint64_t size = u(at + 20, 4), usize = u(at + 24, 4);
  const uint64_t name_len = u(at + 28, 2), extra_len = u(at + 30, 2), comment_len = u(at + 32, 2);
  uint64_t local = u(at + 42, 4);
  if (name_len > bytes_.size() - at - 46) fail_unreadable(path_, "an entry name runs past the end");
  const std::string name(reinterpret_cast<const char*>(&bytes_[at + 46]), name_len);
  // Zip64 extended information: the 0xFFFFFFFF fields, in order.
  for (uint64_t x = at + 46 + name_len, end = x + extra_len; x + 4 <= end;) {
    const uint64_t id = u(x, 2), len = u(x + 2, 2);
    uint64_t field = x + 4;
    if (id == 0x0001) {
      if (usize == kNoSize32) usize = u(field, 8), field += 8;
      if (size == kNoSize32) size = u(field, 8), field += 8;
      if (local == kNoSize32) local = u(field, 8), field += 8;
    }
    x += 4 + len;
  }
  if (method != 0)
    fail_unreadable(path_, "record '" + name + "' is compressed; torch.save stores records");
  if (size != usize) fail_unreadable(path_, "record '" + name + "' has inconsistent sizes");
  if (u(local, 4) != 0x04034b50u)
    fail_unreadable(path_, "the local header of '" + name + "' is damaged");
  const uint64_t data = local + 30 + u(local + 26, 2) + u(local + 28, 2);
  if (data > bytes_.size() || size > bytes_.size() - data)
    fail_unreadable(path_, "record '" + name + "' runs past the end of the file (truncated?)");
  entries_[name] = ZipEntry{data, size, crc};
  return at + 46 + name_len + extra_len + comment_len;
}

}  // namespace khsgd
