#include "khsgd/torch/cpu_generator.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

#include "khsgd/base/vector_clones.hpp"

#if KHSGD_X86_INTRINSICS
#include <immintrin.h>
#endif

namespace khsgd {

namespace {

constexpr int kShift = 397;  // MT19937's M
constexpr uint32_t kMatrixA = 0x9908b0dfU;

uint32_t twist(uint32_t upper_of, uint32_t lower_of, uint32_t shifted) {
  const uint32_t y = (upper_of & 0x80000000U) | (lower_of & 0x7fffffffU);
  return shifted ^ (y >> 1) ^ ((y & 1U) != 0 ? kMatrixA : 0U);
}

// MT19937's twist of all 624 words, in three runs whose words the compiler takes in vector lanes:
// each run reads words not yet rewritten (i + 1, and i + 397 below 227) or rewritten at least 227
// words before (i - 227), so lanes of up to 227 words give the same words as one at a time.
KHSGD_VECTOR_CLONES void twist_words(uint32_t* __restrict state, int words) {
  int i = 0;
  for (; i < words - kShift; ++i) state[i] = twist(state[i], state[i + 1], state[i + kShift]);
  for (; i < words - 1; ++i) state[i] = twist(state[i], state[i + 1], state[i + kShift - words]);
  state[words - 1] = twist(state[words - 1], state[0], state[kShift - 1]);
}

// MT19937's tempering of n words (random()'s last four lines), in vector lanes.
KHSGD_VECTOR_CLONES void temper_words(const uint32_t* __restrict words, int64_t n,
                                      uint32_t* __restrict out) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t y = words[i];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    out[i] = y;
  }
}

#if KHSGD_X86_INTRINSICS
// offsets[k] = bits[k] % (n - k) for n - k < 2^31, four at a time in double: the quotient of two
// integers below 2^32 rounded to double is within one of its floor, and b - q (n - k) is exact,
// so one correction either way gives the remainder itself.
__attribute__((target("avx2"))) void remainders_avx2(const uint32_t* bits, int64_t n, int64_t count,
                                                     int64_t* offsets) {
  const __m256d two_31 = _mm256_set1_pd(2147483648.0), zero = _mm256_setzero_pd();
  const __m256d lane = _mm256_setr_pd(0.0, 1.0, 2.0, 3.0);
  int64_t k = 0;
  for (; k + 4 <= count; k += 4) {
    // bits as doubles: flip the top bit, convert as signed, add 2^31 back (exact).
    const __m128i flipped = _mm_xor_si128(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(bits + k)), _mm_set1_epi32(INT32_MIN));
    const __m256d b = _mm256_add_pd(_mm256_cvtepi32_pd(flipped), two_31);
    const __m256d d = _mm256_sub_pd(_mm256_set1_pd(static_cast<double>(n - k)), lane);
    const __m256d q =
        _mm256_round_pd(_mm256_div_pd(b, d), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m256d rest = _mm256_sub_pd(b, _mm256_mul_pd(q, d));
    rest = _mm256_add_pd(rest, _mm256_and_pd(_mm256_cmp_pd(rest, zero, _CMP_LT_OQ), d));
    rest = _mm256_sub_pd(rest, _mm256_and_pd(_mm256_cmp_pd(rest, d, _CMP_GE_OQ), d));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(offsets + k),
                        _mm256_cvtepi32_epi64(_mm256_cvttpd_epi32(rest)));
  }
  for (; k < count; ++k) offsets[k] = bits[k] % static_cast<uint32_t>(n - k);
}
const bool kCpuHasAvx2 = cpu_vector_sets().avx2;
#endif

// x = (bits & (2^24 - 1)) 2^-24 (exact), then x span + low rounded once (fused, as LibTorch's AVX2
// and AVX-512 kernels) or twice (as its baseline kernel): cpu_uniform's arithmetic, in lanes where
// the CPU has them (the fused form as FMA instructions, not a libm call per value).
KHSGD_VECTOR_CLONES void uniforms(const uint32_t* __restrict bits, int64_t n, float span, float low,
                                  bool once, float* __restrict out) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = static_cast<float>(bits[i] & 0xffffffU) * 0x1p-24f;
    out[i] = once ? std::fma(x, span, low) : x * span + low;  // no contraction: two roundings
  }
}
#if KHSGD_X86_INTRINSICS
__attribute__((target("avx2,fma"))) void uniforms_fused(const uint32_t* bits, int64_t n, float span,
                                                        float low, float* out) {
  const __m256i mask = _mm256_set1_epi32(0xffffff);
  const __m256 scale = _mm256_set1_ps(0x1p-24f), spans = _mm256_set1_ps(span),
               lows = _mm256_set1_ps(low);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i b =
        _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bits + i)), mask);
    const __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(b), scale);
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(x, spans, lows));
  }
  uniforms(bits + i, n - i, span, low, true, out + i);
}
#endif

// offsets[k] = bits[k] % (n - k), k < count: in 32 bits while n - k fits (the same number without
// a 64-bit division), as bits itself beyond (LibTorch 1.13 past 2^32 items).
void remainders(const uint32_t* bits, int64_t n, int64_t count, int64_t* offsets) {
#if KHSGD_X86_INTRINSICS
  if (kCpuHasAvx2 && n < (int64_t{1} << 31)) return remainders_avx2(bits, n, count, offsets);
#endif
  for (int64_t k = 0; k < count; ++k)
    offsets[k] = n - k <= int64_t{0xffffffff}
                     ? static_cast<int64_t>(bits[k] % static_cast<uint32_t>(n - k))
                     : static_cast<int64_t>(bits[k]);
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
  void randperm_into(int64_t m, std::vector<int64_t>& out, std::atomic<int64_t>* drawn) override {
    cpu_randperm_into(generator_, m, out, drawn);
  }
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
  twist_words(state_.data(), kWords);
}

void CpuGenerator::random_block(uint32_t* out, int64_t count) {
  while (count > 0) {
    // random() refills when left_ reaches 1 and then reads word 0 with left_ at kWords: as if
    // left_ had been kWords + 1.
    if (left_ == 1) {
      refill();
      left_ = kWords + 1;
    }
    const int64_t take = std::min<int64_t>(count, left_ - 1);
    temper_words(state_.data() + next_, take, out);
    next_ += static_cast<uint32_t>(take);
    left_ -= static_cast<int>(take);
    out += take;
    count -= take;
  }
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
  std::vector<int64_t> r;
  cpu_randperm_into(generator, m, r);
  return r;
}

void cpu_randperm_into(CpuGenerator& generator, int64_t m, std::vector<int64_t>& r,
                       std::atomic<int64_t>* drawn) {
  if (m < 0) throw std::invalid_argument("randperm of " + std::to_string(m) + " items");
  // What it held is overwritten below. Not resized when it has m items: the caller's steps may be
  // reading it meanwhile (DeviceOps::randperm_into's `drawn`).
  if (r.size() != static_cast<size_t>(m)) r.resize(static_cast<size_t>(m));
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
    if (drawn != nullptr) drawn->store(m, std::memory_order_release);  // final only at the end
    return;
  }
#endif
  std::iota(r.begin(), r.end(), int64_t{0});
  // A block of draws at a time, then their offsets random() % (m - i), then the swaps: the
  // divisions no longer wait for the swaps before them, nor the swaps for a division each.
  constexpr int64_t kBlock = 512;
  uint32_t bits[kBlock];
  int64_t offsets[kBlock];
  for (int64_t first = 0; first + 1 < m; first += kBlock) {
    const int64_t count = std::min(kBlock, m - 1 - first);
    generator.random_block(bits, count);
    remainders(bits, m - first, count, offsets);
    for (int64_t k = 0; k < count; ++k)
      std::swap(r[static_cast<size_t>(first + k)], r[static_cast<size_t>(first + k + offsets[k])]);
    if (drawn != nullptr) drawn->store(first + count, std::memory_order_release);
  }
  if (drawn != nullptr) drawn->store(m, std::memory_order_release);
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
  constexpr int64_t kBlock = 4096;
  uint32_t bits[kBlock];
  for (int64_t first = 0; first < count; first += kBlock) {
    const int64_t n = std::min(kBlock, count - first);
    generator.random_block(bits, n);
    float* out = values.data() + first;
#if KHSGD_X86_INTRINSICS
    if (once) {  // only on a CPU with AVX2 and FMA
      uniforms_fused(bits, n, span, low, out);
      continue;
    }
#endif
    uniforms(bits, n, span, low, once, out);
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
