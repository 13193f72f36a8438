// Builders of hostile but well-formed torch.save files (tests/test_hostile_files.cpp,
// tests/fuzz/): a stored zip archive with correct CRCs, and the pickle torch.save writes for a
// tuple of tensors, with every size, stride, offset and storage field under the test's control.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "khsgd/data/zip_archive.hpp"

namespace khsgd_test {

inline uint32_t crc32_of(const std::string& data) {
  return khsgd::crc32_update(0, reinterpret_cast<const uint8_t*>(data.data()), data.size());
}

// `value` as `width` little-endian bytes.
inline std::string le_bytes(uint64_t value, int width) {
  std::string out;
  for (int i = 0; i < width; ++i) out += static_cast<char>((value >> (8 * i)) & 0xFF);
  return out;
}

// A zip archive of stored records (name, data), as torch.save lays it out (no zip64).
inline std::string zip_of(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string out, directory;
  for (const auto& [name, data] : records) {
    const uint64_t local = out.size();
    const std::string sizes = le_bytes(crc32_of(data), 4) + le_bytes(data.size(), 4) +
                              le_bytes(data.size(), 4) + le_bytes(name.size(), 2);
    out += le_bytes(0x04034b50u, 4) + le_bytes(20, 2) + le_bytes(0, 2) + le_bytes(0, 2) +
           le_bytes(0, 4) + sizes + le_bytes(0, 2) + name + data;
    directory += le_bytes(0x02014b50u, 4) + le_bytes(20, 2) + le_bytes(20, 2) + le_bytes(0, 2) +
                 le_bytes(0, 2) + le_bytes(0, 4) + sizes + le_bytes(0, 2) + le_bytes(0, 2) +
                 le_bytes(0, 2) + le_bytes(0, 2) + le_bytes(0, 4) + le_bytes(local, 4) + name;
  }
  const uint64_t at = out.size();
  out += directory;
  out += le_bytes(0x06054b50u, 4) + le_bytes(0, 2) + le_bytes(0, 2) + le_bytes(records.size(), 2) +
         le_bytes(records.size(), 2) + le_bytes(directory.size(), 4) + le_bytes(at, 4) +
         le_bytes(0, 2);
  return out;
}

// Pickle opcodes (protocol 2), for the builders below and the tests' own pickles.
inline std::string pickle_int(int64_t value) {  // LONG1 with 8 bytes: any int64
  return "\x8a\x08" + le_bytes(static_cast<uint64_t>(value), 8);
}
inline std::string pickle_string(const std::string& text) {  // BINUNICODE
  return "X" + le_bytes(text.size(), 4) + text;
}
inline std::string pickle_tuple(const std::vector<int64_t>& values) {
  std::string out = "(";
  for (const int64_t v : values) out += pickle_int(v);
  return out + "t";
}

// One tensor as torch.save pickles it: _rebuild_tensor_v2(storage, offset, size, stride, ...),
// the storage named by the persistent id ('storage', torch.<Type>, key, location, numel).
struct CraftedTensor {
  std::string storage_type = "FloatStorage";
  std::string key = "0";
  int64_t numel = 0;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
};

inline std::string pickle_tensor(const CraftedTensor& t) {
  return std::string("ctorch._utils\n_rebuild_tensor_v2\n") + "((" + pickle_string("storage") +
         "ctorch\n" + t.storage_type + "\n" + pickle_string(t.key) + pickle_string("cpu") +
         pickle_int(t.numel) + "tQ" + pickle_int(t.offset) + pickle_tuple(t.size) +
         pickle_tuple(t.stride) + "\x89" + "ccollections\nOrderedDict\n)R" + "tR";
}

// data.pkl of torch.save((t0, t1, ...)).
inline std::string pickle_tensor_tuple(const std::vector<CraftedTensor>& tensors) {
  std::string out = "\x80\x02(";
  for (const CraftedTensor& t : tensors) out += pickle_tensor(t);
  return out + "t.";
}

// A torch.save file: the pickle plus the storages' records (key, bytes).
inline std::string torch_save_file(
    const std::string& pickle, const std::vector<std::pair<std::string, std::string>>& storages) {
  std::vector<std::pair<std::string, std::string>> records = {{"archive/data.pkl", pickle},
                                                              {"archive/byteorder", "little"}};
  for (const auto& [key, bytes] : storages) records.emplace_back("archive/data/" + key, bytes);
  records.emplace_back("archive/version", "3\n");
  return zip_of(records);
}

}  // namespace khsgd_test
