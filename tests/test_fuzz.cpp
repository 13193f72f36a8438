// A seeded mutation loop over the loader: truncated, bit-flipped, overwritten, shuffled and
// size-inflated copies of real torch.save files must each end in the data or one UserError —
// never a crash, a hang (ctest's timeout) or an unbounded allocation (the address-space limit
// below turns one into bad_alloc, which would fail the test).
#include <sys/resource.h>

#include <cstring>
#include <fstream>
#include <random>

#include "helpers.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/data/data.hpp"
#include "khsgd/data/pt_file.hpp"

using namespace khsgd;
using namespace khsgd_test;

namespace {

std::string mutate(const std::string& original, std::mt19937_64& rng) {
  std::string bytes = original;
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  switch (rng() % 7) {
    case 0:  // truncate anywhere
      bytes.resize(pick(bytes.size()));
      break;
    case 1:  // flip a few bits
      for (int i = 0, n = 1 + static_cast<int>(rng() % 8); i < n && !bytes.empty(); ++i)
        bytes[pick(bytes.size())] ^= static_cast<char>(1u << (rng() % 8));
      break;
    case 2: {  // overwrite a range with random bytes
      const size_t at = pick(bytes.size()), n = std::min<size_t>(1 + rng() % 64, bytes.size() - at);
      for (size_t i = 0; i < n; ++i) bytes[at + i] = static_cast<char>(rng());
      break;
    }
    case 3: {  // copy one range over another
      const size_t from = pick(bytes.size()), to = pick(bytes.size());
      const size_t n = std::min({size_t{1} + rng() % 256, bytes.size() - from, bytes.size() - to});
      std::memmove(&bytes[to], &bytes[from], n);
      break;
    }
    case 4: {  // make a 32-bit field huge: zip sizes and offsets, pickle integers
      if (bytes.size() < 4) break;
      const size_t at = pick(bytes.size() - 3);
      const uint32_t huge = 0xFFFFFFF0u - static_cast<uint32_t>(rng() % 1024);
      std::memcpy(&bytes[at], &huge, 4);
      break;
    }
    case 5: {  // mutate inside the pickle, where the tensors' shapes and offsets live
      const size_t pkl = bytes.find("data.pkl");
      if (pkl == std::string::npos) break;
      const size_t start = pkl + 8 + 30;  // just past the local header's name
      for (int i = 0; i < 3 && start < bytes.size(); ++i)
        bytes[start + pick(std::min<size_t>(240, bytes.size() - start))] = static_cast<char>(rng());
      break;
    }
    default:  // insert garbage
      bytes.insert(pick(bytes.size()), std::string(1 + rng() % 16, static_cast<char>(rng())));
  }
  return bytes;
}

}  // namespace

TEST(LoaderFuzz, MutatedFilesEndInDataOrOneCleanError) {
  // No single allocation may grow without bound: cap the address space (LibTorch and the test
  // itself need well under this). AddressSanitizer's shadow memory needs terabytes of address
  // space; there its own cap does the same (max_allocation_size_mb with allocator_may_return_null
  // in tests/sanitizers/options.sh: a larger allocation throws bad_alloc).
  rlimit limit{};
  getrlimit(RLIMIT_AS, &limit);
#ifndef __SANITIZE_ADDRESS__
  const rlimit capped{8ull << 30, limit.rlim_max};
  setrlimit(RLIMIT_AS, &capped);
#endif

  TempDir tmp;
  const std::vector<std::string> sources = {
      test_data("hmda-small-cuda/features-processed-NY-2017.pt"),
      test_data("hmda-small-cuda/targets-processed-NY-2017.pt")};
  std::mt19937_64 rng(20261126);
  int clean_errors = 0, loaded = 0;
  const int kIterations = 1500;
  for (int i = 0; i < kIterations; ++i) {
    const std::string original = read_file(sources[i % 2]);
    const std::string path = tmp / "mutated.pt";
    std::ofstream(path, std::ios::binary | std::ios::trunc) << mutate(original, rng);
    try {
      const std::vector<HostTensor> tensors = read_tensor_tuple(path);
      for (const HostTensor& t : tensors) {
        int64_t count = 1;
        for (int64_t s : t.shape) count *= s;
        ASSERT_EQ(static_cast<size_t>(count), t.values.size()) << "iteration " << i;
      }
      ++loaded;
    } catch (const UserError& e) {
      const std::string message = e.what();
      ASSERT_EQ(message.find('\n'), std::string::npos) << "iteration " << i << ": " << message;
      ASSERT_EQ(message.rfind(path, 0), 0u) << "the message must name the file: " << message;
      ++clean_errors;
    }
  }
  setrlimit(RLIMIT_AS, &limit);
  EXPECT_EQ(clean_errors + loaded, kIterations);
  EXPECT_GT(clean_errors, kIterations / 2);
  std::printf("fuzz: %d mutated files refused cleanly, %d still loadable\n", clean_errors, loaded);
}

TEST(LoaderFuzz, MutatedPairsThroughTheWholeLoader) {
  TempDir tmp;
  std::mt19937_64 rng(7);
  const std::string features =
      read_file(test_data("hmda-small-cuda/features-processed-NY-2017.pt"));
  const std::string targets = read_file(test_data("hmda-small-cuda/targets-processed-NY-2017.pt"));
  for (int i = 0; i < 300; ++i) {
    std::ofstream(tmp / kFeaturesFile, std::ios::binary | std::ios::trunc)
        << (i % 2 ? mutate(features, rng) : features);
    std::ofstream(tmp / kTargetsFile, std::ios::binary | std::ios::trunc)
        << (i % 2 ? targets : mutate(targets, rng));
    try {
      const Dataset data = load_hmda(tmp.path());
      ASSERT_EQ(data.train_x.size(), static_cast<size_t>(data.n_train * data.d));
      ASSERT_EQ(data.test_y.size(), static_cast<size_t>(data.n_test));
    } catch (const UserError&) {}
  }
}
