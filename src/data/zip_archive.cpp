#include "khsgd/data/zip_archive.hpp"

#include <algorithm>
#include <array>

#include "khsgd/base/errors.hpp"

namespace khsgd {

namespace {

constexpr uint64_t kNoSize32 = 0xFFFFFFFFu;  // "see the zip64 record" in a 32-bit field
constexpr uint64_t kEndSize = 22;            // end of central directory, without its comment
constexpr uint64_t kMaxComment = 65535;
constexpr uint64_t kEntrySize = 46;  // central directory entry, without name, extra, comment
constexpr uint64_t kLocalSize = 30;  // local header, without name and extra

// The little-endian field of `width` bytes at `at` of `b`; the callers read only fields inside the
// fixed-size parts they have read.
uint64_t le(const std::vector<uint8_t>& b, size_t at, int width) {
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = (value << 8) | b.at(at + i);
  return value;
}

}  // namespace

// Slicing by 8: eight bytes per step through eight tables (table k advances a byte's CRC by k
// more zero bytes), instead of one byte per dependent table lookup: a 20 MB HMDA file's check took
// ~40 ms a byte at a time, a third of a one-epoch run. The same function, byte for byte
// (Zip.Crc32SlicedIsTheBytewiseCrc checks).
uint32_t crc32_update(uint32_t crc, const uint8_t* data, size_t size) {
  static const std::array<std::array<uint32_t, 256>, 8> tables = [] {
    std::array<std::array<uint32_t, 256>, 8> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (size_t k = 1; k < 8; ++k) t[k][i] = t[0][t[k - 1][i] & 0xFF] ^ (t[k - 1][i] >> 8);
    return t;
  }();
  crc = ~crc;
  for (; size >= 8; size -= 8, data += 8) {
    const uint32_t low = crc ^ (uint32_t{data[0]} | uint32_t{data[1]} << 8 |
                                uint32_t{data[2]} << 16 | uint32_t{data[3]} << 24);
    crc = tables[7][low & 0xFF] ^ tables[6][(low >> 8) & 0xFF] ^ tables[5][(low >> 16) & 0xFF] ^
          tables[4][low >> 24] ^ tables[3][data[4]] ^ tables[2][data[5]] ^ tables[1][data[6]] ^
          tables[0][data[7]];
  }
  for (; size > 0; --size, ++data) crc = tables[0][(crc ^ *data) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

void fail_unreadable(const std::string& path, const std::string& why) {
  throw UserError(path + ": cannot be read as a torch.save file: " + why);
}

std::string shown(const std::string& text) {
  constexpr size_t kMaxShown = 80;
  std::string out;
  for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
    } else {
      static const char* const kHex = "0123456789abcdef";
      out += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
    }
  }
  return text.size() > kMaxShown ? out + "..." : out;
}

ZipArchive::ZipArchive(std::string path, const ByteSource& source)
    : path_(std::move(path)), source_(source) {
  read_directory();
}

std::vector<uint8_t> ZipArchive::read(const std::string& name) const {
  const auto found = entries_.find(name);
  if (found == entries_.end())
    fail_unreadable(path_, "the archive has no record '" + shown(name) + "'");
  const ZipEntry& e = found->second;
  std::vector<uint8_t> data = bytes(e.offset, e.size);  // checked to lie inside when listed
  if (crc32_update(0, data.data(), data.size()) != e.crc)
    fail_unreadable(path_, "record '" + shown(name) + "' is damaged (CRC mismatch)");
  return data;
}

std::vector<uint8_t> ZipArchive::bytes(uint64_t at, uint64_t n) const {
  if (!source_.holds(at, n))
    fail_unreadable(path_, "the zip structure points past the end of the file (truncated?)");
  return source_.read(at, n);
}

void ZipArchive::find_directory(uint64_t* count, uint64_t* dir_size, uint64_t* dir_offset) const {
  // End of central directory: 22 bytes plus a comment of at most 64 KiB, at the end. Only that
  // tail is read to find it.
  const uint64_t size = source_.size();
  if (size < kEndSize) fail_unreadable(path_, "too short for a zip archive");
  const uint64_t tail_start = size > kEndSize + kMaxComment ? size - kEndSize - kMaxComment : 0;
  const std::vector<uint8_t> tail = bytes(tail_start, size - tail_start);
  size_t eocd = tail.size() - kEndSize;
  while (le(tail, eocd, 4) != 0x06054b50u) {
    if (eocd == 0) fail_unreadable(path_, "no zip end-of-directory record (truncated?)");
    --eocd;
  }
  *count = le(tail, eocd + 10, 2);
  *dir_size = le(tail, eocd + 12, 4);
  *dir_offset = le(tail, eocd + 16, 4);
  if (*count == 0xFFFF || *dir_size == kNoSize32 || *dir_offset == kNoSize32) {
    // Zip64: the locator just before the end record points at the zip64 end record.
    const uint64_t end_at = tail_start + eocd;
    if (end_at < 20) fail_unreadable(path_, "zip64 locator missing");
    const std::vector<uint8_t> locator = bytes(end_at - 20, 20);
    if (le(locator, 0, 4) != 0x07064b50u) fail_unreadable(path_, "zip64 locator missing");
    const std::vector<uint8_t> end64 = bytes(le(locator, 8, 8), 56);
    if (le(end64, 0, 4) != 0x06064b50u) fail_unreadable(path_, "zip64 end record missing");
    *count = le(end64, 32, 8);
    *dir_size = le(end64, 40, 8);
    *dir_offset = le(end64, 48, 8);
  }
}

void ZipArchive::read_directory() {
  uint64_t count = 0, dir_size = 0, dir_offset = 0;
  find_directory(&count, &dir_size, &dir_offset);
  if (!source_.holds(dir_offset, dir_size))
    fail_unreadable(path_, "the central directory lies outside the file");
  if (count > dir_size / kEntrySize)
    fail_unreadable(path_, "the entry count does not fit the central directory");
  // Entry by entry: what is read is what the entries take, never more than the directory's size.
  uint64_t at = dir_offset;
  for (uint64_t i = 0; i < count; ++i) at = read_entry(at, dir_offset + dir_size);
  check_no_overlap();
}

uint64_t ZipArchive::read_entry(uint64_t at, uint64_t dir_end) {
  auto inside = [&](uint64_t n) {
    if (at > dir_end || n > dir_end - at)
      fail_unreadable(path_, "a central directory entry runs past the directory's end");
  };
  inside(kEntrySize);
  const std::vector<uint8_t> fixed = bytes(at, kEntrySize);
  if (le(fixed, 0, 4) != 0x02014b50u)
    fail_unreadable(path_, "a central directory entry is damaged");
  const uint64_t method = le(fixed, 10, 2);
  const auto crc = static_cast<uint32_t>(le(fixed, 16, 4));
  uint64_t size = le(fixed, 20, 4), usize = le(fixed, 24, 4), local = le(fixed, 42, 4);
  const uint64_t name_len = le(fixed, 28, 2), extra_len = le(fixed, 30, 2);
  const uint64_t total = kEntrySize + name_len + extra_len + le(fixed, 32, 2);  // < 200 KiB
  inside(total);
  const std::vector<uint8_t> variable = bytes(at + kEntrySize, name_len + extra_len);
  const std::string name(variable.begin(), variable.begin() + static_cast<ptrdiff_t>(name_len));
  // Zip64 extended information: the 0xFFFFFFFF fields, in order, each inside the extra field.
  for (size_t x = name_len, end = name_len + extra_len; x + 4 <= end;) {
    const uint64_t id = le(variable, x, 2), len = le(variable, x + 2, 2);
    if (x + 4 + len > end)
      fail_unreadable(path_, "the extra field of '" + shown(name) + "' is damaged");
    if (id == 0x0001) {
      size_t field = x + 4;
      for (uint64_t* value : {&usize, &size, &local}) {
        if (*value != kNoSize32) continue;
        if (field + 8 > x + 4 + len)
          fail_unreadable(path_, "the zip64 field of '" + shown(name) + "' is short");
        *value = le(variable, field, 8), field += 8;
      }
    }
    x += 4 + len;
  }
  if (method != 0)
    fail_unreadable(path_, "record '" + shown(name) + "' is compressed; torch.save stores records");
  if (size != usize) fail_unreadable(path_, "record '" + shown(name) + "' has inconsistent sizes");
  if (entries_.count(name)) fail_unreadable(path_, "record '" + shown(name) + "' appears twice");
  entries_[name] = ZipEntry{record_data(name, local, size), size, crc};
  return at + total;
}

uint64_t ZipArchive::record_data(const std::string& name, uint64_t local, uint64_t size) const {
  if (!source_.holds(local, kLocalSize))
    fail_unreadable(path_, "the local header of '" + shown(name) + "' lies outside the file");
  const std::vector<uint8_t> header = bytes(local, kLocalSize);
  if (le(header, 0, 4) != 0x04034b50u)
    fail_unreadable(path_, "the local header of '" + shown(name) + "' is damaged");
  // local + 30 + 2 * 65535 cannot overflow: local + 30 lies inside the file.
  const uint64_t data = local + kLocalSize + le(header, 26, 2) + le(header, 28, 2);
  if (!source_.holds(data, size))
    fail_unreadable(path_,
                    "record '" + shown(name) + "' runs past the end of the file (truncated?)");
  return data;
}

void ZipArchive::check_no_overlap() const {
  // Records that share bytes would let a small file hand out the same bytes many times over (and
  // the reader keep each copy); torch.save's records follow one another.
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& [name, e] : entries_) spans.emplace_back(e.offset, e.offset + e.size);
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second)
      fail_unreadable(path_, "two records of the archive overlap");
}

}  // namespace khsgd
