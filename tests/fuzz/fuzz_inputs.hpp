// What each fuzz target does with one input, shared by the libFuzzer targets (fuzz_*.cpp) and the
// ctest that replays the committed seeds and regression inputs through the normal and the ASan
// builds (tests/test_hostile_files.cpp). Each returns true when the input was read, false when it
// was refused with a UserError naming it; a broken invariant aborts (a finding). Any other
// exception escapes: to libFuzzer that is a crash, to the ctest a failure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "khsgd/base/errors.hpp"
#include "khsgd/base/hash.hpp"
#include "khsgd/data/byte_source.hpp"
#include "khsgd/data/pt_file.hpp"
#include "khsgd/data/zip_archive.hpp"
#include "khsgd/run/checkpoint.hpp"
#include "khsgd/sorting/pair_setup.hpp"

namespace khsgd_fuzz {

// A refusal must be one line that starts with the input's name.
inline bool refused(const khsgd::UserError& e, const std::string& name) {
  const std::string message = e.what();
  if (message.rfind(name + ": ", 0) != 0 || message.find('\n') != std::string::npos) std::abort();
  return false;
}

// The torch.save reader: tensors that hold what their shapes say, or a refusal.
inline bool pt_reader_input(const uint8_t* data, size_t size) {
  try {
    const std::vector<khsgd::HostTensor> tensors =
        khsgd::read_tensor_tuple_from_memory("fuzz.pt", data, size);
    for (const khsgd::HostTensor& t : tensors) {
      uint64_t count = 1;
      for (const int64_t s : t.shape) count *= static_cast<uint64_t>(s);
      if (count != t.values.size()) std::abort();
    }
    return true;
  } catch (const khsgd::UserError& e) { return refused(e, "fuzz.pt"); }
}

// The zip reader: the directory, then every record, CRC-checked. Records do not overlap, so
// reading them all reads at most the input.
inline bool zip_archive_input(const uint8_t* data, size_t size) {
  const khsgd::MemorySource source(data, size);
  try {
    const khsgd::ZipArchive zip("fuzz.zip", source);
    uint64_t total = 0;
    for (const auto& [name, entry] : zip.entries()) {
      if (zip.read(name).size() != entry.size) std::abort();
      total += entry.size;
    }
    if (total > size) std::abort();
    return true;
  } catch (const khsgd::UserError& e) { return refused(e, "fuzz.zip"); }
}

// An input that does not start with the checkpoint magic is taken as a payload and framed with
// its length and checksum: a mutated payload would almost never match its checksum, and the
// fuzzer would not get past it.
inline std::vector<uint8_t> checkpoint_file(const uint8_t* data, size_t size) {
  if (size >= 8 && std::memcmp(data, "KHSGDCKP", 8) == 0)
    return std::vector<uint8_t>(data, data + size);
  std::vector<uint8_t> out = {'K', 'H', 'S', 'G', 'D', 'C', 'K', 'P'};
  const int64_t header[2] = {1, static_cast<int64_t>(size)};
  const auto* h = reinterpret_cast<const uint8_t*>(header);
  out.insert(out.end(), h, h + sizeof header);
  out.insert(out.end(), data, data + size);
  const uint64_t sum = khsgd::fnv1a64(data, size);
  const auto* s = reinterpret_cast<const uint8_t*>(&sum);
  out.insert(out.end(), s, s + sizeof sum);
  return out;
}

// The checkpoint reader, then the pair sorters' state inside it (load_pair_state) as each rule,
// for a run of 2 ranks of 4 rows with 3 SBW thresholds and 4 KH-SGD penalties: loaded orders
// must name rows of the shard.
inline bool checkpoint_input(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> file = checkpoint_file(data, size);
  khsgd::Checkpoint c;
  try {
    c = khsgd::read_checkpoint_from_memory("fuzz.bin", file.data(), file.size());
  } catch (const khsgd::UserError& e) { return refused(e, "fuzz.bin"); }
  for (const khsgd::PairRule rule :
       {khsgd::PairRule::CDGraB, khsgd::PairRule::SBW, khsgd::PairRule::KHSGD}) {
    khsgd::PairSorterState state;
    state.next_orders.resize(8);
    state.log_penalty.resize(4);
    khsgd::StateReader reader(c.sorter_state, "fuzz.bin");
    try {
      khsgd::SorterShape shape;  // 2 ranks of 4 rows, 2 epochs: 8 SBW thresholds
      shape.ranks = 2;
      shape.shard_rows = 4;
      shape.epochs = 2;
      khsgd::load_pair_state(reader, rule, shape, &state);
    } catch (const khsgd::UserError& e) {
      refused(e, "fuzz.bin");
      continue;
    }
    for (const int64_t row : state.next_orders)
      if (row < 0 || row >= 4) std::abort();
  }
  return true;
}

}  // namespace khsgd_fuzz
