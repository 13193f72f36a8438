// Writes the fuzzers' crafted seed files (tests/fuzz/corpus/README.md says where the others come
// from): small torch.save files of the shapes the loader meets, a zip64 archive, and checkpoints
// cut down from real ones.
//
//   make_seeds FUZZ_DIR [CHECKPOINT...]        # FUZZ_DIR: tests/fuzz
//
// FUZZ_DIR/corpus/pt_reader and .../zip_archive get the crafted files; each CHECKPOINT (a
// checkpoint-rank0.bin of a short run) is rewritten with two rows of metrics into
// FUZZ_DIR/corpus/checkpoint, once whole and once as its bare payload (fuzz_checkpoint frames
// those). FUZZ_DIR/regressions/TARGET get the small crafted cases of test_hostile_files.cpp.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "crafted_files.hpp"
#include "khsgd/run/checkpoint.hpp"

using namespace khsgd_test;

namespace {

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string floats(const std::vector<float>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4);
}

// The HMDA layout: (train [3, 2], test [1, 2]), views of one float32 storage; and (train_y,
// test_y).
void write_torch_seeds(const std::string& dir) {
  CraftedTensor train{"FloatStorage", "0", 8, 0, {3, 2}, {2, 1}};
  CraftedTensor test{"FloatStorage", "0", 8, 6, {1, 2}, {2, 1}};
  write(dir + "/views.pt", torch_save_file(pickle_tensor_tuple({train, test}),
                                           {{"0", floats({1, 2, 3, 4, 5, 6, 7, 8})}}));
  CraftedTensor labels{"FloatStorage", "0", 3, 0, {3}, {1}};
  CraftedTensor other{"FloatStorage", "1", 1, 0, {1}, {1}};
  write(dir + "/two-storages.pt", torch_save_file(pickle_tensor_tuple({labels, other}),
                                                  {{"0", floats({0, 1, 1})}, {"1", floats({1})}}));
  // float64, transposed (not contiguous); a 0-dim tensor; an empty one.
  const std::vector<double> d = {1, 2, 3, 4};
  CraftedTensor transposed{"DoubleStorage", "0", 4, 0, {2, 2}, {1, 2}};
  CraftedTensor scalar{"FloatStorage", "1", 1, 0, {}, {}};
  CraftedTensor empty{"FloatStorage", "2", 0, 0, {0, 3}, {3, 1}};
  write(dir + "/float64-scalar-empty.pt",
        torch_save_file(pickle_tensor_tuple({transposed, scalar, empty}),
                        {{"0", std::string(reinterpret_cast<const char*>(d.data()), 32)},
                         {"1", floats({5})},
                         {"2", ""}}));
}

// One stored record through the zip64 fields: the entry's sizes and offset in its extra field,
// the directory found through the zip64 locator and end record.
void write_zip64_seed(const std::string& dir) {
  const std::string name = "archive/data.pkl", data = "\x80\x02).";
  std::string out = le_bytes(0x04034b50u, 4) + le_bytes(45, 2) + le_bytes(0, 2) + le_bytes(0, 2) +
                    le_bytes(0, 4) + le_bytes(crc32_of(data), 4) + le_bytes(data.size(), 4) +
                    le_bytes(data.size(), 4) + le_bytes(name.size(), 2) + le_bytes(0, 2) + name +
                    data;
  const std::string extra = le_bytes(1, 2) + le_bytes(24, 2) + le_bytes(data.size(), 8) +
                            le_bytes(data.size(), 8) + le_bytes(0, 8);
  const std::string entry =
      le_bytes(0x02014b50u, 4) + le_bytes(45, 2) + le_bytes(45, 2) + le_bytes(0, 2) +
      le_bytes(0, 2) + le_bytes(0, 4) + le_bytes(crc32_of(data), 4) + le_bytes(0xFFFFFFFFu, 4) +
      le_bytes(0xFFFFFFFFu, 4) + le_bytes(name.size(), 2) + le_bytes(extra.size(), 2) +
      le_bytes(0, 2) + le_bytes(0, 2) + le_bytes(0, 2) + le_bytes(0, 4) + le_bytes(0xFFFFFFFFu, 4) +
      name + extra;
  const uint64_t dir_at = out.size();
  out += entry;
  const uint64_t end64_at = out.size();
  out += le_bytes(0x06064b50u, 4) + le_bytes(44, 8) + le_bytes(45, 2) + le_bytes(45, 2) +
         le_bytes(0, 4) + le_bytes(0, 4) + le_bytes(1, 8) + le_bytes(1, 8) +
         le_bytes(entry.size(), 8) + le_bytes(dir_at, 8);
  out += le_bytes(0x07064b50u, 4) + le_bytes(0, 4) + le_bytes(end64_at, 8) + le_bytes(1, 4);
  out += le_bytes(0x06054b50u, 4) + le_bytes(0, 2) + le_bytes(0, 2) + le_bytes(0xFFFF, 2) +
         le_bytes(0xFFFF, 2) + le_bytes(0xFFFFFFFFu, 4) + le_bytes(0xFFFFFFFFu, 4) + le_bytes(0, 2);
  write(dir + "/zip64.zip", out);
}

void write_checkpoint_seeds(const std::string& dir, const std::string& from, int index) {
  khsgd::Checkpoint c = khsgd::read_checkpoint(from);
  size_t cut = 0;
  for (int line = 0; line < 2 && cut != std::string::npos; ++line)
    cut = c.metrics_rows.find('\n', cut == 0 ? 0 : cut + 1);
  if (cut != std::string::npos) c.metrics_rows.resize(cut + 1);
  const std::string whole = dir + "/checkpoint-" + std::to_string(index) + ".bin";
  khsgd::write_checkpoint(whole, c);
  std::ifstream in(whole, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write(dir + "/payload-" + std::to_string(index) + ".bin", bytes.substr(24, bytes.size() - 32));
}

// The crafted cases of tests/test_hostile_files.cpp that fit in a few bytes, as inputs of the
// targets: each read outside a buffer (or leaked) before the readers checked it.
void write_crafted_regressions(const std::string& dir) {
  const std::string storage80(80, '\0');
  CraftedTensor overflow{"FloatStorage", "0", (int64_t{1} << 62) + 1, 0, {100000}, {1}};
  write(dir + "/pt_reader/crafted-storage-bytes-overflow.pt",
        torch_save_file(pickle_tensor_tuple({overflow}), {{"0", std::string(4, '\0')}}));
  CraftedTensor small{"FloatStorage", "0", 2, 0, {2}, {1}};
  CraftedTensor larger{"FloatStorage", "0", 100000, 0, {100000}, {1}};
  write(dir + "/pt_reader/crafted-storage-key-reused-larger.pt",
        torch_save_file(pickle_tensor_tuple({small, larger}), {{"0", std::string(8, '\0')}}));
  CraftedTensor far{"FloatStorage", "0", 20, INT64_MAX - 5, {20}, {1}};
  write(dir + "/pt_reader/crafted-offset-sum-overflow.pt",
        torch_save_file(pickle_tensor_tuple({far}), {{"0", storage80}}));
  write(dir + "/pt_reader/crafted-list-holds-itself.pt",
        torch_save_file(std::string("\x80\x02]q") + '\0' + "h" + '\0' + "a.", {}));
  // A checkpoint payload (the target frames it): epoch, fingerprint, rank, world size, empty theta
  // and velocity, then CD-GraB's state for 2 ranks of 4 rows with an order of 7, past the shard.
  std::string state = le_bytes(0, 8) + le_bytes(8, 8);
  for (const int32_t row : {0, 1, 2, 3, 0, 1, 2, 7})
    state += le_bytes(static_cast<uint32_t>(row), 4);
  const std::string payload = le_bytes(1, 8) + le_bytes(0, 8) + le_bytes(0, 8) + le_bytes(1, 8) +
                              le_bytes(0, 8) + le_bytes(0, 8) + le_bytes(state.size(), 8) + state +
                              le_bytes(0, 8) + le_bytes(0, 8) + le_bytes(0, 8);
  write(dir + "/checkpoint/crafted-order-out-of-range.bin", payload);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: make_seeds FUZZ_DIR [CHECKPOINT...]\n");
    return 2;
  }
  const std::string corpus = std::string(argv[1]) + "/corpus";
  write_torch_seeds(corpus + "/pt_reader");
  write_torch_seeds(corpus + "/zip_archive");
  write_zip64_seed(corpus + "/zip_archive");
  for (int i = 2; i < argc; ++i) write_checkpoint_seeds(corpus + "/checkpoint", argv[i], i - 1);
  write_crafted_regressions(std::string(argv[1]) + "/regressions");
  return 0;
}
