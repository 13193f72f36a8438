#include "khsgd/torch/cpu_generator.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

namespace khsgd {

namespace {

constexpr int kShift = 397;  // MT19937's M
constexpr uint32_t kMatrixA = 0x9908b0dfU;

uint32_t twist(uint32_t upper_of, uint32_t lower_of, uint32_t shifted) {
  const uint32_t y = (upper_of & 0x80000000U) | (lower_of & 0x7fffffffU);
  return shifted ^ (y >> 1) ^ ((y & 1U) != 0 ? kMatrixA : 0U);
}

// at::CPUGeneratorImpl's state record (CPUGeneratorImplState: the legacy THGenerator record, then
// the cached float normal sample), field by field at its offsets on x86-64 and aarch64 Linux.
constexpr size_t kSeedAt = 0, kLeftAt = 8, kSeededAt = 12, kNextAt = 16, kWordsAt = 24;
constexpr size_t kNormalValidAt = 5040, kFloatNormalValidAt = 5052;

template <typename T>
void put(std::vector<uint8_t>& bytes, size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof(T));
}

template <typename T>
T get(const std::vector<uint8_t>& bytes, size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof(T));
  return value;
}

class CpuOps final : public DeviceOps {
 public:
  CpuOps(CpuGenerator& generator, LogTable log_table)
      : generator_(generator), log_table_(log_table) {}
  std::vector<int64_t> randperm(int64_t m) override { return cpu_randperm(generator_, m); }
  std::vector<float> uniform(int64_t count, double from, double to) override {
    return cpu_uniform(generator_, count, from, to);
  }
  std::vector<float> log_of_multiples(double constant, int64_t count) override {
    return log_table_(constant, count);
  }

 private:
  CpuGenerator& generator_;
  LogTable log_table_;
};

}  // namespace

void CpuGenerator::manual_seed(uint64_t seed) {
  seed_ = seed;
  state_[0] = static_cast<uint32_t>(seed & 0xffffffffU);
  for (int j = 1; j < kWords; ++j)
    state_[j] = 1812433253U * (state_[j - 1] ^ (state_[j - 1] >> 30)) + static_cast<uint32_t>(j);
  left_ = 1;
  next_ = 0;
}

void CpuGenerator::refill() {
  left_ = kWords;
  next_ = 0;
  int i = 0;
  for (; i < kWords - kShift; ++i) state_[i] = twist(state_[i], state_[i + 1], state_[i + kShift]);
  for (; i < kWords - 1; ++i)
    state_[i] = twist(state_[i], state_[i + 1], state_[i + kShift - kWords]);
  state_[kWords - 1] = twist(state_[kWords - 1], state_[0], state_[kShift - 1]);
}

std::vector<uint8_t> CpuGenerator::state() const {
  std::vector<uint8_t> bytes(kStateBytes, 0);  // the normal-sample fields: none cached
  put<uint64_t>(bytes, kSeedAt, seed_);
  put<int32_t>(bytes, kLeftAt, left_);
  put<int32_t>(bytes, kSeededAt, 1);
  put<uint64_t>(bytes, kNextAt, next_);
  for (int j = 0; j < kWords; ++j)
    put<uint64_t>(bytes, kWordsAt + 8 * static_cast<size_t>(j), state_[j]);
  return bytes;
}

void CpuGenerator::set_state(const std::vector<uint8_t>& bytes) {
  if (bytes.size() != kStateBytes)
    throw std::invalid_argument("a CPU generator state is " + std::to_string(kStateBytes) +
                                " bytes, not " + std::to_string(bytes.size()));
  const int32_t left = get<int32_t>(bytes, kLeftAt);
  const uint64_t next = get<uint64_t>(bytes, kNextAt);
  // LibTorch's own check (mt19937::is_valid), then one it lacks: after a refill left + next is
  // kWords + 1 (fresh: left 1, next 0), and random() reads word `next` while left > 1, so a larger
  // sum (a damaged checkpoint) would read past the state.
  if (get<int32_t>(bytes, kSeededAt) == 0 || left <= 0 || left > kWords || next > kWords ||
      static_cast<uint64_t>(left) + next > kWords + 1)
    throw std::invalid_argument("Invalid mt19937 state");
  if (get<int32_t>(bytes, kNormalValidAt) != 0 || bytes[kFloatNormalValidAt] != 0)
    throw std::invalid_argument("the CPU generator state holds a cached normal sample");
  std::array<uint32_t, kWords> words{};
  for (int j = 0; j < kWords; ++j) {
    const uint64_t word = get<uint64_t>(bytes, kWordsAt + 8 * static_cast<size_t>(j));
    if (word > 0xffffffffU) throw std::invalid_argument("Invalid mt19937 state word");
    words[j] = static_cast<uint32_t>(word);
  }
  state_ = words;
  seed_ = get<uint64_t>(bytes, kSeedAt);
  left_ = left;
  next_ = static_cast<uint32_t>(next);
}

std::vector<int64_t> cpu_randperm(CpuGenerator& generator, int64_t m) {
  if (m < 0) throw std::invalid_argument("randperm of " + std::to_string(m) + " items");
  std::vector<int64_t> r(static_cast<size_t>(m));
#if KHSGD_TORCH_MAJOR >= 2
  // LibTorch 2.x from 2^32 / 20 items on: the inside-out shuffle over 64-bit draws (random64:
  // the first 32 bits drawn are the high half).
  if (m >= int64_t{0xffffffff} / 20) {
    for (int64_t i = 0; i < m; ++i) {
      const uint64_t high = generator.random(), low = generator.random();
      const auto z = static_cast<size_t>(((high << 32) | low) % static_cast<uint64_t>(i + 1));
      r[static_cast<size_t>(i)] = r[z];
      r[z] = i;
    }
    return r;
  }
#endif
  std::iota(r.begin(), r.end(), int64_t{0});
  for (int64_t i = 0; i + 1 < m; ++i) {
    // random() % (m - i): in 32 bits while m - i fits (the same number, without a 64-bit
    // division, most of D-RR's draw), in 64 beyond (LibTorch 1.13 past 2^32 items).
    const uint32_t bits = generator.random();
    const int64_t z = m - i <= int64_t{0xffffffff}
                          ? static_cast<int64_t>(bits % static_cast<uint32_t>(m - i))
                          : static_cast<int64_t>(bits);
    std::swap(r[static_cast<size_t>(i)], r[static_cast<size_t>(i + z)]);
  }
  return r;
}

bool libtorch_uniform_rounds_once() {
#if defined(__x86_64__)
  static const bool once = [] {
    const char* forced = std::getenv("ATEN_CPU_CAPABILITY");
    if (forced != nullptr && std::string(forced) == "default") return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return once;
#else
  return true;  // aarch64: fused multiply-add is part of the base instruction set
#endif
}

std::vector<float> cpu_uniform(CpuGenerator& generator, int64_t count, double from, double to) {
  const auto low = static_cast<float>(from);
  const auto high = static_cast<float>(to);
  const float span = high - low;
  std::vector<float> values(static_cast<size_t>(count));
  const bool once = libtorch_uniform_rounds_once();
  for (float& v : values) {
    const float x = static_cast<float>(generator.random() & 0xffffffU) * 0x1p-24f;  // exact
    v = once ? std::fma(x, span, low) : x * span + low;  // no contraction here: two roundings
  }
  return values;
}

std::vector<float> cpu_linear_init(CpuGenerator& generator, int64_t d) {
  // torch::nn::init::calculate_gain(kLeakyReLU, sqrt(5)) / sqrt(fan_in), times sqrt(3).
  const double gain = std::sqrt(2.0 / (1 + std::pow(std::sqrt(5.0), 2)));
  const double bound = std::sqrt(3.0) * (gain / std::sqrt(static_cast<double>(d)));
  std::vector<float> theta = cpu_uniform(generator, d, -bound, bound);
  const double bias_bound = 1 / std::sqrt(static_cast<double>(d));
  theta.push_back(cpu_uniform(generator, 1, -bias_bound, bias_bound)[0]);
  return theta;
}

CpuGenerator& default_cpu_generator() {
  static CpuGenerator generator;
  return generator;
}

std::unique_ptr<DeviceOps> make_cpu_ops(CpuGenerator& generator, LogTable log_table) {
  return std::make_unique<CpuOps>(generator, log_table);
}

}  // namespace khsgd
