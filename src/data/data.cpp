#include "khsgd/data/data.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <utility>
#include <vector>

#include "khsgd/base/cores.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/base/hash.hpp"
#include "khsgd/base/run_parts.hpp"
#include "khsgd/data/pt_file.hpp"

namespace khsgd {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void check_finite(const HostTensor& t, const std::string& path, const char* name, int64_t row_len) {
  for (size_t i = 0; i < t.values.size(); ++i) {
    if (!std::isfinite(t.values[i])) {
      std::ostringstream msg;
      msg << path << ": " << name << " holds a non-finite value (" << t.values[i] << ") at row "
          << static_cast<int64_t>(i) / row_len << "; expected finite numbers";
      throw UserError(msg.str());
    }
  }
}

// Checks shapes, lengths, finiteness and labels of a loaded (train_X, test_X), (train_y, test_y)
// pair. Throws UserError naming `features_path` or `targets_path`.
Dataset assemble_dataset(const std::vector<HostTensor>& features, const std::string& features_path,
                         const std::vector<HostTensor>& targets, const std::string& targets_path) {
  if (features.size() != 2)
    throw UserError(features_path + ": holds a tuple of " + std::to_string(features.size()) +
                    " tensors, expected 2: (train_X, test_X)");
  if (targets.size() != 2)
    throw UserError(targets_path + ": holds a tuple of " + std::to_string(targets.size()) +
                    " tensors, expected 2: (train_y, test_y)");
  const char* x_names[2] = {"train_X", "test_X"};
  const char* y_names[2] = {"train_y", "test_y"};
  for (int i = 0; i < 2; ++i) {
    if (features[i].shape.size() != 2)
      throw UserError(features_path + ": " + x_names[i] + " has shape " +
                      shape_text(features[i].shape) + ", expected 2 dimensions [rows, d]");
    if (targets[i].shape.size() != 1)
      throw UserError(targets_path + ": " + y_names[i] + " has shape " +
                      shape_text(targets[i].shape) + ", expected 1 dimension [rows]");
    if (features[i].shape[0] != targets[i].shape[0])
      throw UserError(targets_path + ": " + y_names[i] + " has " +
                      std::to_string(targets[i].shape[0]) + " labels but " + features_path +
                      " has " + std::to_string(features[i].shape[0]) + " rows in " + x_names[i]);
  }
  const int64_t d = features[0].shape[1];
  if (d < 1) throw UserError(features_path + ": train_X has no feature columns");
  if (features[1].shape[1] != d)
    throw UserError(features_path + ": test_X has " + std::to_string(features[1].shape[1]) +
                    " features but train_X has " + std::to_string(d) + "; expected the same d");
  if (features[0].shape[0] < 1 || features[1].shape[0] < 1)
    throw UserError(features_path + ": train_X and test_X must each hold at least one row");
  for (int i = 0; i < 2; ++i) {
    check_finite(features[i], features_path, x_names[i], d);
    const auto& labels = targets[i].values;
    for (size_t r = 0; r < labels.size(); ++r) {
      if (labels[r] != 0.0f && labels[r] != 1.0f) {
        std::ostringstream msg;
        msg << targets_path << ": " << y_names[i] << "[" << r << "] = " << labels[r]
            << ", expected labels in {0, 1}";
        throw UserError(msg.str());
      }
    }
  }
  Dataset data;
  data.d = d;
  data.n_train = features[0].shape[0];
  data.n_test = features[1].shape[0];
  data.train_x.assign(features[0].values.begin(), features[0].values.end());
  data.test_x = features[1].values;
  data.train_y = targets[0].values;
  data.test_y = targets[1].values;
  return data;
}

}  // namespace

Dataset load_hmda(const std::string& data_dir) {
  const std::string features_path = data_dir + "/" + kFeaturesFile;
  const std::string targets_path = data_dir + "/" + kTargetsFile;
  const std::vector<HostTensor> features = read_tensor_tuple(features_path);
  const std::vector<HostTensor> targets = read_tensor_tuple(targets_path);
  Dataset data = assemble_dataset(features, features_path, targets, targets_path);
  data.source = "hmda:" + data_dir;
  return data;
}

namespace {

// splitmix64: a tiny, fully specified generator, so the synthetic set is the same everywhere and
// draws nothing from LibTorch's generators (those belong to the training run's seed).
struct SplitMix64 {
  static constexpr uint64_t kIncrement = 0x9E3779B97F4A7C15ull;
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += kIncrement);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double normal() {                                                           // Box-Muller
    const double u1 = 1.0 - uniform();
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

}  // namespace

Dataset make_synthetic(int64_t n_train, int64_t n_test, int threads_asked) {
  // Shaped like the preprocessed HMDA features: 10 standardised continuous columns of various
  // spread, then 10 binary indicators of increasing frequency.
  constexpr int kContinuous = 10, kBinary = 10, d = kContinuous + kBinary;
  // Draws per row: two uniforms per normal, one per indicator, one for the label.
  constexpr uint64_t kDrawsPerRow = 2 * kContinuous + kBinary + 1;
  const double spread[kContinuous] = {1.45, 1.33, 1.47, 1.09, 1.21, 1.12, 1.41, 1.66, 1.00, 1.60};
  const double rate[kBinary] = {0.10, 0.15, 0.20, 0.27, 0.32, 0.37, 0.43, 0.49, 0.54, 0.60};
  const double weight[d] = {0.90, -0.60, 0.45, -0.35, 0.30, -0.25, 0.20, 0.15,  -0.10, 0.05,
                            0.80, -0.70, 0.60, -0.50, 0.40, -0.30, 0.25, -0.20, 0.15,  -0.10};
  const double bias = 1.9;                     // about 77 % positives
  constexpr uint64_t kSeed = 0x6b68736764ull;  // "khsgd"
  // One stream of draws over the training rows, then the test rows. splitmix64's state after k
  // draws is seed + k * increment, so row r starts at draw kDrawsPerRow * r wherever it is made:
  // rows are made in parallel blocks (the libm calls of the normals are most of the start-up), the
  // same numbers as one pass.
  auto fill_rows = [&](uint64_t first_row, int64_t from, int64_t to, float* x, float* y) {
    SplitMix64 rng{kSeed + first_row * kDrawsPerRow * SplitMix64::kIncrement};
    for (int64_t r = from; r < to; ++r) {
      double z = bias;
      float* row = &x[r * d];
      for (int j = 0; j < kContinuous; ++j) row[j] = static_cast<float>(spread[j] * rng.normal());
      for (int j = 0; j < kBinary; ++j) row[kContinuous + j] = rng.uniform() < rate[j] ? 1.f : 0.f;
      for (int j = 0; j < d; ++j) z += weight[j] * row[j];
      y[r] = rng.uniform() < 1.0 / (1.0 + std::exp(-z)) ? 1.f : 0.f;
    }
  };
  Dataset data;
  data.d = d;
  data.n_train = n_train;
  data.n_test = n_test;
  data.train_x.resize(n_train * d);
  data.train_y.resize(n_train);
  data.test_x.resize(n_test * d);
  data.test_y.resize(n_test);
  // Blocks of rows over both sets; a few threads take them in turn.
  constexpr int64_t kBlockRows = 8192;
  const int64_t train_blocks = (n_train + kBlockRows - 1) / kBlockRows;
  const int64_t blocks = train_blocks + (n_test + kBlockRows - 1) / kBlockRows;
  auto make_block = [&](int64_t b) {
    const bool train = b < train_blocks;
    const int64_t rows = train ? n_train : n_test;
    const int64_t from = (train ? b : b - train_blocks) * kBlockRows;
    const int64_t to = std::min(rows, from + kBlockRows);
    const uint64_t row_before = train ? 0 : static_cast<uint64_t>(n_train);
    fill_rows(row_before + static_cast<uint64_t>(from), from, to,
              train ? data.train_x.data() : data.test_x.data(),
              train ? data.train_y.data() : data.test_y.data());
  };
  const int64_t threads = std::min<int64_t>(
      blocks, std::clamp<int64_t>(threads_asked > 0 ? threads_asked : allowed_cores(), 1, 8));
  std::atomic<int64_t> next{0};
  run_parts(threads, [&](int64_t) {
    for (int64_t b = next++; b < blocks; b = next++) make_block(b);
  });
  data.source = "synthetic";
  return data;
}

Partition plan_partition(int64_t train_rows, int64_t features, int64_t batch, int64_t ranks) {
  Partition p;
  p.ranks = ranks;
  p.D = gradient_length(features);
  p.batch = batch;
  p.microbatch = batch / ranks;
  const int64_t full = train_rows / batch;
  p.num_batches = full - full % 2;  // the reference keeps an even number of batches
  p.used_rows = p.num_batches * batch;
  p.shard_rows = p.used_rows / ranks;
  if (p.num_batches < 2)
    throw UserError("the training set has " + std::to_string(train_rows) +
                    " rows, too few for two batches of --B " + std::to_string(batch));
  return p;
}

uint64_t data_fingerprint(const Dataset& data) {
  uint64_t hash = kFnvOffset;
  for (int64_t size : {data.d, data.n_train, data.n_test}) hash = fnv1a64(&size, sizeof size, hash);
  const std::pair<const float*, size_t> arrays[] = {{data.train_x.data(), data.train_x.size()},
                                                    {data.train_y.data(), data.train_y.size()},
                                                    {data.test_x.data(), data.test_x.size()},
                                                    {data.test_y.data(), data.test_y.size()}};
  for (const auto& [values, count] : arrays) hash = fnv1a64(values, count * sizeof(float), hash);
  return hash;
}

}  // namespace khsgd
