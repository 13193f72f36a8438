// Untrusted input files, crafted to be well-formed yet lie about their sizes (issue 18): every one
// must end in one UserError naming the file, never a crash, an out-of-bounds read (the ASan build
// runs these too), or reading a huge file whole. Each test here failed on the readers before
// they checked these cases: a crash, data read from outside a buffer, a leak, or a 2 GB read.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>

#include "crafted_files.hpp"
#include "fuzz/fuzz_inputs.hpp"
#include "helpers.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/data/pt_file.hpp"
#include "khsgd/run/checkpoint.hpp"
#include "khsgd/sorting/sorter_registry.hpp"
#include "khsgd/sorting/state_io.hpp"
#include "plain_draws.hpp"
#include "sorter_shape.hpp"

using namespace khsgd;
using namespace khsgd_test;

namespace {

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// The UserError reading `path` as a tuple of tensors gives ("" if it loads).
std::string pt_refusal(const std::string& path) {
  try {
    read_tensor_tuple(path);
  } catch (const UserError& e) { return e.what(); }
  return "";
}

std::string checkpoint_refusal(const std::string& path) {
  try {
    read_checkpoint(path);
  } catch (const UserError& e) { return e.what(); }
  return "";
}

// Bytes this process has read through read(2)/pread(2) so far (/proc/self/io's rchar).
uint64_t bytes_read_so_far() {
  std::ifstream io("/proc/self/io");
  std::string key;
  uint64_t value = 0;
  while (io >> key >> value)
    if (key == "rchar:") return value;
  return 0;
}

// A sparse file of `size` bytes (a hole, nothing written) starting with `head`.
void sparse_file(const std::string& path, const std::string& head, off_t size) {
  write_bytes(path, head);
  ASSERT_EQ(::truncate(path.c_str(), size), 0);
}

// One float32 storage "0" of `numel` zeros, viewed by `tensors`.
std::string file_with(const std::vector<CraftedTensor>& tensors, size_t storage_bytes) {
  return torch_save_file(pickle_tensor_tuple(tensors), {{"0", std::string(storage_bytes, '\0')}});
}

// `message` is one line that names `path` and says `what`.
void expect_refusal(const std::string& message, const std::string& path, const std::string& what) {
  EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
  EXPECT_NE(message.find(what), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

}  // namespace

TEST(LoaderHostile, AStorageWhoseByteCountOverflowsIsRefused) {
  // numel * 4 = 2^64 + 4 wrapped to 4: the 4-byte record passed the length check, and the 100 000
  // elements of the tensor were copied from past its end.
  TempDir dir;
  CraftedTensor t;
  t.numel = (int64_t{1} << 62) + 1;
  t.size = {100000};
  t.stride = {1};
  write_bytes(dir / "x.pt", file_with({t}, 4));
  expect_refusal(
      pt_refusal(dir / "x.pt"), dir / "x.pt",
      "cannot be read as a torch.save file: storage '0' is shorter than its tensor says");
}

TEST(LoaderHostile, AStorageKeyReusedWithALargerExtentIsRefused) {
  // The second tensor names the already-loaded storage "0" again, declaring 100 000 elements: its
  // extent was only checked against that declaration, not against the 8 bytes loaded.
  TempDir dir;
  CraftedTensor small;
  small.numel = 2;
  small.size = {2};
  small.stride = {1};
  CraftedTensor large = small;
  large.numel = 100000;
  large.size = {100000};
  write_bytes(dir / "x.pt", file_with({small, large}, 8));
  expect_refusal(pt_refusal(dir / "x.pt"), dir / "x.pt",
                 "storage '0' is shorter than its tensor says");
  // The same key under another dtype is refused as well (its element size differs).
  large = small;
  large.storage_type = "DoubleStorage";
  write_bytes(dir / "y.pt", file_with({small, large}, 8));
  expect_refusal(pt_refusal(dir / "y.pt"), dir / "y.pt", "storage '0' is named with two dtypes");
}

TEST(LoaderHostile, AnExtentWhoseProductOverflowsIsRefused) {
  // (size - 1) * stride = 2^23 * 2^40 = 2^63 wrapped to INT64_MIN, below numel: the check passed
  // and the copy read 2^40 elements past the start of the storage (a segfault). The storage must
  // hold the 2^23 + 1 elements the view counts: 32 MiB, written here rather than committed.
  TempDir dir;
  CraftedTensor t;
  t.numel = (int64_t{1} << 23) + 1;
  t.size = {t.numel};
  t.stride = {int64_t{1} << 40};
  write_bytes(dir / "x.pt", file_with({t}, static_cast<size_t>(t.numel) * 4));
  expect_refusal(pt_refusal(dir / "x.pt"), dir / "x.pt", "a tensor reaches past its storage");
}

TEST(LoaderHostile, AnOffsetWhoseSumWithTheExtentOverflowsIsRefused) {
  // offset + (size - 1) * stride wrapped negative: below numel, so the copy started at
  // offset * 4 bytes into a 80-byte storage.
  TempDir dir;
  CraftedTensor t;
  t.numel = 20;
  t.offset = std::numeric_limits<int64_t>::max() - 5;
  t.size = {20};
  t.stride = {1};
  write_bytes(dir / "x.pt", file_with({t}, 80));
  expect_refusal(pt_refusal(dir / "x.pt"), dir / "x.pt", "a tensor reaches past its storage");
}

TEST(LoaderHostile, DeepNestingIsRefusedAndFreedWithoutRecursion) {
  // 200 000 nested one-element tuples, 200 KB of pickle: freeing the chain recursed once per level
  // and overflowed the stack.
  TempDir dir;
  const std::string deep = "\x80\x02)" + std::string(200000, '\x85') + ".";
  write_bytes(dir / "x.pt", torch_save_file(deep, {}));
  expect_refusal(pt_refusal(dir / "x.pt"), dir / "x.pt",
                 "cannot be read as a torch.save file: objects nested more than 1000 deep");
  // 999 levels are within the bound: refused for what the file holds, not for its depth.
  const std::string shallow = "\x80\x02)" + std::string(999, '\x85') + ".";
  write_bytes(dir / "y.pt", torch_save_file(shallow, {}));
  expect_refusal(pt_refusal(dir / "y.pt"), dir / "y.pt",
                 "tuple element 0 is a Tuple, expected a tensor");
}

TEST(LoaderHostile, AListThatHoldsItselfIsRefusedWithoutALeak) {
  // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND: a list inside itself through the memo. Reference-
  // counted objects leaked the cycle (LeakSanitizer fails the ASan build at exit).
  TempDir dir;
  const std::string cycle = std::string("\x80\x02]q") + '\0' + "h" + '\0' + "a.";
  write_bytes(dir / "x.pt", torch_save_file(cycle, {}));
  expect_refusal(pt_refusal(dir / "x.pt"), dir / "x.pt", "holds a GenericList");
}

TEST(LoaderHostile, WhatTheMemoHandsBackIsNotCopiedWithoutBound) {
  // The memo hands back one object any number of times for 2 bytes each. An opcode that copied a
  // large part of it (STACK_GLOBAL its strings, a storage its key, a tensor its shape) would make
  // the copies grow with the square of the pickle's size: names and ranks are bounded.
  TempDir dir;
  const std::string big = "X" + le_bytes(100000, 4) + std::string(100000, 'a');
  std::string globals = "\x80\x02" + big + "q" + '\0';
  for (int i = 0; i < 1000; ++i) globals += std::string("h") + '\0' + "h" + '\0' + "\x93";
  write_bytes(dir / "x.pt", torch_save_file(globals + ".", {}));
  expect_refusal(pt_refusal(dir / "x.pt"), dir / "x.pt", "a name is too long");
  CraftedTensor t;
  t.key = std::string(100000, 'k');
  t.numel = 1;
  write_bytes(dir / "y.pt", torch_save_file(pickle_tensor_tuple({t}), {}));
  expect_refusal(pt_refusal(dir / "y.pt"), dir / "y.pt", "a storage key is too long");
  t.key = "0";
  t.size.assign(65, 1);
  t.stride.assign(65, 1);
  write_bytes(dir / "z.pt",
              torch_save_file(pickle_tensor_tuple({t}), {{"0", std::string(4, '\0')}}));
  expect_refusal(pt_refusal(dir / "z.pt"), dir / "z.pt", "a tensor has more than 64 dimensions");
}

TEST(LoaderHostile, OverlappingOrRepeatedRecordsAreRefused) {
  // Two storage records pointing at the same bytes: a small file could hand out its largest
  // record any number of times (and the reader keep each copy).
  TempDir dir;
  std::string file = torch_save_file(pickle_tensor_tuple({}), {{"0", "abcd"}, {"1", "abcd"}});
  // The central directory entry of archive/data/1 takes archive/data/0's local header offset.
  const size_t zero = file.find("archive/data/0"), entry = file.rfind("archive/data/1");
  ASSERT_NE(zero, std::string::npos);
  ASSERT_NE(entry, std::string::npos);
  file.replace(entry - 4, 4, le_bytes(zero - 30, 4));
  write_bytes(dir / "x.pt", file);
  expect_refusal(pt_refusal(dir / "x.pt"), dir / "x.pt", "two records of the archive overlap");
  // Two entries of the same name.
  write_bytes(dir / "y.pt", zip_of({{"archive/data.pkl", pickle_tensor_tuple({})},
                                    {"archive/data.pkl", pickle_tensor_tuple({})}}));
  expect_refusal(pt_refusal(dir / "y.pt"), dir / "y.pt", "record 'archive/data.pkl' appears twice");
}

TEST(LoaderHostile, AHugeFileIsRefusedWithoutBeingRead) {
  // 2 GB sparse files (nothing on disk): all zeros, and a zip signature followed by zeros (no end
  // record in its last 64 KiB). They were read whole (14 s, 2.2 GB) before being refused.
  TempDir dir;
  const off_t huge = off_t{2} << 30;
  sparse_file(dir / "zeros.pt", "", huge);
  sparse_file(dir / "zip.pt", "PK\x03\x04", huge);
  const uint64_t before = bytes_read_so_far();
  expect_refusal(pt_refusal(dir / "zeros.pt"), dir / "zeros.pt", "not a torch.save file");
  expect_refusal(pt_refusal(dir / "zip.pt"), dir / "zip.pt", "no zip end-of-directory record");
  EXPECT_LT(bytes_read_so_far() - before, uint64_t{1} << 20);
}

TEST(CheckpointHostile, ALengthFieldIsCheckedBeforeThePayloadIsRead) {
  // A 2 GB sparse checkpoint whose length field does not match its size.
  TempDir dir;
  sparse_file(dir / "c.bin", std::string("KHSGDCKP") + le_bytes(1, 8) + le_bytes(100, 8),
              off_t{2} << 30);
  const uint64_t before = bytes_read_so_far();
  expect_refusal(checkpoint_refusal(dir / "c.bin"), dir / "c.bin",
                 "corrupt checkpoint (its length field does not match the file size");
  EXPECT_LT(bytes_read_so_far() - before, uint64_t{1} << 20);
}

namespace {

// A checkpoint file around `payload`, its checksum right (fnv1a64, as checkpoint.cpp writes it).
std::string checkpoint_file(const std::string& payload, int64_t version = 1) {
  uint64_t hash = 1469598103934665603ull;
  const size_t words = payload.size() / 8;
  for (size_t i = 0; i < words; ++i) {
    uint64_t word;
    std::memcpy(&word, payload.data() + 8 * i, 8);
    hash = (hash ^ word) * 1099511628211ull;
  }
  for (size_t i = 8 * words; i < payload.size(); ++i)
    hash = (hash ^ static_cast<uint8_t>(payload[i])) * 1099511628211ull;
  return "KHSGDCKP" + le_bytes(version, 8) + le_bytes(payload.size(), 8) + payload +
         le_bytes(hash, 8);
}

}  // namespace

TEST(CheckpointHostile, ALengthInsideThePayloadIsCheckedAgainstWhatRemains) {
  // theta's count * 4 overflows 64 bits; the checksum is right, so only the length check stands.
  TempDir dir;
  const std::string payload = le_bytes(1, 8) + le_bytes(0, 8) + le_bytes(0, 8) + le_bytes(1, 8) +
                              le_bytes((uint64_t{1} << 62) + 1, 8) + std::string(16, '\0');
  write_bytes(dir / "c.bin", checkpoint_file(payload));
  expect_refusal(checkpoint_refusal(dir / "c.bin"), dir / "c.bin",
                 "a length field is out of range");
}

TEST(CheckpointHostile, AnOrderOutOfRangeInTheSorterStateIsRefused) {
  // The pair sorters' next order matrix indexes the rank's rows of the training data: a row
  // number past them (in a checkpoint whose checksum is right) was read from outside the data.
  khsgd_test::PlainDraws ops(0.5f);
  const SorterShape shape =
      khsgd_test::shape_of(/*ranks=*/1, /*m=*/4, /*mb=*/2, /*D=*/2, /*epochs=*/2);
  // Where each sorter's saved orders start: the pair sorters after their epoch count (8 bytes)
  // and the order count (8), GraB, I-B and SO after the order count alone; 4 bytes an order.
  const std::vector<std::pair<const char*, size_t>> sorters = {
      {"CD-GraB", 16}, {"SBW", 16}, {"KH-SGD", 16}, {"GraB", 8}, {"I-B", 8}, {"SO", 8}};
  for (const auto& [name, first_order] : sorters) {
    auto sorter = make_sorter(name, shape, ops);
    StateWriter saved;
    sorter->save_state(saved);
    // The second order becomes 4 (past the shard's 4 rows), then a copy of the first (a row
    // twice, which a permutation never holds).
    int32_t first = 0;
    std::memcpy(&first, saved.data().data() + first_order, 4);
    for (const int32_t second : {int32_t{4}, first}) {
      std::vector<uint8_t> bytes = saved.data();
      std::memcpy(bytes.data() + first_order + 4, &second, 4);
      StateReader reader(bytes, "c.bin");
      try {
        sorter->load_state(reader);
        ADD_FAILURE() << name << ": the order " << second << " at position 1 was accepted";
      } catch (const UserError& e) {
        expect_refusal(e.what(), "c.bin", "names a row out of range or twice");
      }
    }
    // The state as saved loads.
    StateReader good(saved.data(), "c.bin");
    EXPECT_NO_THROW(sorter->load_state(good)) << name;
  }
}

namespace {

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') names.push_back(dir + "/" + e->d_name);
    ::closedir(d);
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool replay(bool (*input)(const uint8_t*, size_t), const std::string& path) {
  const std::string bytes = read_file(path);
  return input(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace

TEST(FuzzRegressions, EverySeedAndRegressionInputIsReadOrRefusedCleanly) {
  // What each fuzz target did with these inputs (fuzz_inputs.hpp), here under ctest, in the normal
  // and the ASan build: the regression inputs are the crashes the fuzzers found
  // (tests/fuzz/regressions/README.md); a crash or a sanitizer report fails this test.
  const std::vector<std::pair<std::string, bool (*)(const uint8_t*, size_t)>> targets = {
      {"pt_reader", khsgd_fuzz::pt_reader_input},
      {"zip_archive", khsgd_fuzz::zip_archive_input},
      {"checkpoint", khsgd_fuzz::checkpoint_input}};
  for (const auto& [target, input] : targets) {
    const std::vector<std::string> seeds =
        files_in(std::string(KHSGD_FUZZ_DIR) + "/corpus/" + target);
    const std::vector<std::string> crashes =
        files_in(std::string(KHSGD_FUZZ_DIR) + "/regressions/" + target);
    EXPECT_GE(seeds.size(), 5u) << target;
    int loaded = 0;
    for (const std::string& path : seeds) loaded += replay(input, path) ? 1 : 0;
    for (const std::string& path : crashes) {
      SCOPED_TRACE(path);
      replay(input, path);
    }
    // The seeds are real files (a few, the LibTorch-written dicts, are not tuples).
    EXPECT_GE(loaded, 4) << target;
  }
}

TEST(FuzzRegressions, TheTorchSaveSeedsLoadFromTheirFilesAsFromMemory) {
  // The file reader (pread, piece by piece) and the in-memory one the fuzzer drives are one
  // reader: the same tensors from both, for every seed and regression input.
  for (const char* folder : {"/corpus/pt_reader", "/regressions/pt_reader"}) {
    for (const std::string& path : files_in(std::string(KHSGD_FUZZ_DIR) + folder)) {
      const std::string bytes = read_file(path);
      std::string from_file, from_memory;
      std::vector<HostTensor> a, b;
      try {
        a = read_tensor_tuple(path);
      } catch (const UserError& e) { from_file = std::string(e.what()).substr(path.size()); }
      try {
        b = read_tensor_tuple_from_memory(path, reinterpret_cast<const uint8_t*>(bytes.data()),
                                          bytes.size());
      } catch (const UserError& e) { from_memory = std::string(e.what()).substr(path.size()); }
      EXPECT_EQ(from_file, from_memory) << path;
      ASSERT_EQ(a.size(), b.size()) << path;
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].shape, b[i].shape) << path;
        EXPECT_EQ(a[i].values, b[i].values) << path;
      }
    }
  }
}

// A checkpoint of a newer format (after going back to an older build) is not damage: the resume
// stops and names the build to use, instead of passing over it for the previous checkpoint, which
// would then replace it.
TEST(CheckpointHostile, ANewerFormatIsNamedNotTakenForDamage) {
  TempDir dir;
  {
    std::ofstream out(dir / "c.bin", std::ios::binary);
    out << checkpoint_file(std::string(64, '\0'), 3);
  }
  try {
    read_checkpoint(dir / "c.bin");
    ADD_FAILURE() << "a format-3 checkpoint was read";
  } catch (const DamagedCheckpoint& e) {
    ADD_FAILURE() << "taken for damage: " << e.what();
  } catch (const UserError& e) {
    expect_refusal(e.what(), dir / "c.bin", "written by a newer khsgd (checkpoint format 3");
  }
}

// The checkpoint is opened without following a link, whatever check came before.
TEST(CheckpointHostile, ALinkInPlaceOfTheCheckpointIsNotFollowed) {
  TempDir dir;
  {
    std::ofstream out(dir / "elsewhere.bin", std::ios::binary);
    out << checkpoint_file(std::string(64, '\0'));
  }
  ASSERT_EQ(::symlink((dir / "elsewhere.bin").c_str(), (dir / "c.bin").c_str()), 0);
  const std::string why = checkpoint_refusal(dir / "c.bin");
  EXPECT_NE(why.find("symbolic link"), std::string::npos) << why;
}
