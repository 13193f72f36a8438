// Data preparation (ALGORITHM.md §1) and the synthetic stand-in for HMDA.
#include <cmath>
#include <cstdint>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/base/hash.hpp"
#include "khsgd/base/huge_pages.hpp"
#include "khsgd/data/data.hpp"
#include "khsgd/data/zip_archive.hpp"

using namespace khsgd;
using namespace khsgd_test;

TEST(Preparation, EvenNumberOfFullBatchesAndContiguousShards) {
  // The golden data: 20 011 rows, B 16 -> 1250 batches (even), 20 000 rows used.
  Partition p = plan_partition(20011, 20, 16, 1);
  EXPECT_EQ(p.num_batches, 1250);
  EXPECT_EQ(p.used_rows, 20000);
  EXPECT_EQ(p.shard_rows, 20000);
  EXPECT_EQ(p.D, 21);  // d = 20 features and the bias
  EXPECT_EQ(p.features(), 20);
  EXPECT_EQ(p.microbatch, 16);
  p = plan_partition(20011, 20, 16, 2);
  EXPECT_EQ(p.microbatch, 8);
  EXPECT_EQ(p.shard_rows, 10000);
  // The real split: 195 285 rows -> 12 205 full batches, rounded down to 12 204 -> N' = 195 264.
  p = plan_partition(kHmdaTrainRows, 20, 16, 1);
  EXPECT_EQ(p.num_batches, 12204);
  EXPECT_EQ(p.used_rows, 195264);
  p = plan_partition(kHmdaTrainRows, 20, 16, 4);
  EXPECT_EQ(p.shard_rows, 48816);
  EXPECT_EQ(p.microbatch, 4);
  // 3 full batches of 16 -> 2.
  p = plan_partition(63, 20, 16, 1);
  EXPECT_EQ(p.num_batches, 2);
  EXPECT_EQ(p.used_rows, 32);
  EXPECT_THROW(plan_partition(31, 20, 16, 1), UserError);
}

TEST(Synthetic, HmdaShapedDeterministicAndLearnable) {
  const Dataset a = make_synthetic();
  EXPECT_EQ(a.n_train, 195285);
  EXPECT_EQ(a.n_test, 48822);
  EXPECT_EQ(a.d, 20);
  const double positives =
      std::accumulate(a.train_y.begin(), a.train_y.end(), 0.0) / static_cast<double>(a.n_train);
  EXPECT_NEAR(positives, 0.77, 0.01);
  for (int j = 10; j < 20; ++j) {  // the binary columns
    for (int64_t r = 0; r < 1000; ++r) {
      const float v = a.train_x[r * 20 + j];
      ASSERT_TRUE(v == 0.0f || v == 1.0f);
    }
  }
  const Dataset b = make_synthetic();
  EXPECT_EQ(a.train_x, b.train_x);
  EXPECT_EQ(a.test_y, b.test_y);
  const Dataset small = make_synthetic(100, 10);
  EXPECT_EQ(small.train_x.size(), 2000u);
  // Same stream: the small set's first rows are the big set's first rows.
  EXPECT_TRUE(std::equal(small.train_x.begin(), small.train_x.end(), a.train_x.begin()));
  // Across the 8192-row blocks that threads make in turn, too.
  const Dataset blocks = make_synthetic(8193 * 2, 10);
  EXPECT_TRUE(std::equal(blocks.train_x.begin(), blocks.train_x.end(), a.train_x.begin()));
  EXPECT_TRUE(std::equal(blocks.train_y.begin(), blocks.train_y.end(), a.train_y.begin()));
}

// The default set's bytes, pinned: the same as the one-thread, one-stream generator made them
// before the rows were made in blocks by threads (commit 1abf250), so a change to the stream is
// seen here rather than as other losses in a run.
TEST(Synthetic, TheDefaultSetsBytesArePinned) {
  const Dataset a = make_synthetic();
  uint64_t h = fnv1a64(a.train_x.data(), a.train_x.size() * sizeof(float));
  h = fnv1a64(a.train_y.data(), a.train_y.size() * sizeof(float), h);
  h = fnv1a64(a.test_x.data(), a.test_x.size() * sizeof(float), h);
  h = fnv1a64(a.test_y.data(), a.test_y.size() * sizeof(float), h);
  EXPECT_EQ(h, 0x795ae66700b41e10ull);
}

namespace {

// The textbook bytewise CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), bit by bit.
uint32_t crc32_bitwise(uint32_t crc, const uint8_t* data, size_t size) {
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  return ~crc;
}

}  // namespace

// zip_archive.cpp's sliced CRC-32 against the check value of the standard and the bitwise loop, at
// every start offset and length around its 8-byte steps, and continued piece by piece.
TEST(Zip, Crc32SlicedIsTheBytewiseCrc) {
  const std::string check = "123456789";
  EXPECT_EQ(khsgd::crc32_update(0, reinterpret_cast<const uint8_t*>(check.data()), check.size()),
            0xCBF43926u);
  std::vector<uint8_t> bytes(1 << 20);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (uint8_t& b : bytes) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<uint8_t>(state >> 56);
  }
  for (size_t offset = 0; offset < 16; ++offset)
    for (size_t length = 0; length < 80; ++length)
      ASSERT_EQ(khsgd::crc32_update(0, bytes.data() + offset, length),
                crc32_bitwise(0, bytes.data() + offset, length))
          << "offset " << offset << ", length " << length;
  const uint32_t whole = khsgd::crc32_update(0, bytes.data(), bytes.size());
  EXPECT_EQ(whole, crc32_bitwise(0, bytes.data(), bytes.size()));
  const uint32_t first = khsgd::crc32_update(0, bytes.data(), 12345);
  EXPECT_EQ(khsgd::crc32_update(first, bytes.data() + 12345, bytes.size() - 12345), whole);
}

// The training rows' memory (huge_pages.hpp): a large array is a 2 MiB-aligned mapping of its own
// that asks for huge pages (the mapping's VmFlags in /proc/self/smaps hold "hg", MADV_HUGEPAGE),
// holds what a std::vector holds, and is unmapped whole when freed.
namespace {
// The VmFlags line of the mapping that holds `address`, or "" where smaps has none.
std::string vm_flags_of(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<uintptr_t>(address);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long long from = 0, to = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> from >> dash >> to && dash == '-') {  // "from-to perms ...": a mapping
      inside = from <= at && at < to;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}
}  // namespace

TEST(HugePages, LargeArraysAreAlignedMappingsThatAskForHugePages) {
  const size_t floats = 3 * kHugePageBytes / sizeof(float) + 5;  // 6 MiB and 20 bytes
  HugePageVector<float> rows(floats);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(rows.data()) % kHugePageBytes, 0u);
  std::iota(rows.begin(), rows.end(), 0.0f);
  const std::vector<float> plain(rows.begin(), rows.end());
  HugePageVector<float> copy = rows;  // a second mapping, the same values
  EXPECT_NE(copy.data(), rows.data());
  EXPECT_TRUE(std::equal(copy.begin(), copy.end(), plain.begin(), plain.end()));
  EXPECT_EQ(rows.back(), static_cast<float>(floats - 1));
  EXPECT_TRUE(HugePageAllocator<float>() == HugePageAllocator<double>());  // stateless, rebound
#if defined(__linux__)
  if (!std::ifstream("/proc/self/smaps").good()) GTEST_SKIP() << "no /proc/self/smaps to read";
  const std::string flags = vm_flags_of(rows.data() + floats / 2);
  ASSERT_FALSE(flags.empty()) << "no mapping in /proc/self/smaps holds the array";
  // A kernel without transparent huge pages refuses the advice; one with them records it.
  if (std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled").good()) {
    EXPECT_NE((" " + flags + " ").find(" hg "), std::string::npos) << flags;
  }
  // Freed, the whole mapping is gone (munmap of the length it was mapped with).
  const float* first = copy.data();
  const float* last = copy.data() + copy.size() - 1;
  copy = HugePageVector<float>();
  EXPECT_EQ(vm_flags_of(first), "");
  EXPECT_EQ(vm_flags_of(last), "");
#endif
  // Growing past the threshold moves the values into a mapping of their own.
  HugePageVector<float> grown(10, 2.0f);
  grown.resize(floats, 3.0f);
  EXPECT_EQ(grown[9], 2.0f);
  EXPECT_EQ(grown[10], 3.0f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(grown.data()) % kHugePageBytes, 0u);
}
