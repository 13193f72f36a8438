// libm_lanes.hpp: the sigmoids and softplus terms computed in vector lanes are libm's, bit for bit,
// wherever they run in lanes, and libm's own calls wherever libm is not the variant they follow.
#include "khsgd/model/libm_lanes.hpp"

#include <gnu/libc-version.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "khsgd/base/sanitizers.hpp"
#include "khsgd/model/logistic.hpp"

namespace khsgd {
namespace {

float float_of(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Arguments over every exponent (a stride through all 2^32 bit patterns), the logits a model
// gives (uniform in [-40, 40], and near 0 where 1 + x and exp(-|z|) near 1 take fdlibm's other
// branches), the edges of each algorithm's common path, and the special values.
std::vector<float> arguments() {
  std::vector<float> z;
  for (uint64_t bits = 12345; bits < (uint64_t{1} << 32); bits += 1021)
    z.push_back(float_of(static_cast<uint32_t>(bits)));
  std::mt19937 draw(5);
  std::uniform_real_distribution<float> logits(-40.0f, 40.0f), near_zero(-1e-3f, 1e-3f);
  for (int i = 0; i < 1000000; ++i) z.push_back(logits(draw));
  for (int i = 0; i < 200000; ++i) z.push_back(near_zero(draw));
  const float inf = std::numeric_limits<float>::infinity();
  for (const float edge :
       {0.0f,       1e-45f,     1e-38f, 0x1p-54f, 0x1p-29f,
        0.3465736f, 0.8813736f, 87.9f,  88.0f,    88.72284f,
        89.0f,      103.3f,     104.0f, 511.9f,   512.0f,
        745.2f,     746.0f,     3e38f,  inf,      std::numeric_limits<float>::quiet_NaN()}) {
    for (const float sign : {1.0f, -1.0f}) {
      z.push_back(sign * edge);
      z.push_back(std::nextafter(sign * edge, inf));
      z.push_back(std::nextafter(sign * edge, -inf));
    }
  }
  return z;
}

template <typename Word, typename Real>
Word bits_of(Real value) {
  Word word;
  std::memcpy(&word, &value, sizeof word);
  return word;
}
bool same_bits(double a, double b) { return bits_of<uint64_t>(a) == bits_of<uint64_t>(b); }
bool same_bits(float a, float b) { return bits_of<uint32_t>(a) == bits_of<uint32_t>(b); }

// How many of `lanes` differ in their bits from expected(z[i]) (a NaN matches any NaN), the first
// five reported.
template <typename Real, typename Expected>
int64_t bits_differing(const std::vector<float>& z, const std::vector<Real>& lanes,
                       Expected expected, const char* name) {
  int64_t differ = 0;
  for (size_t i = 0; i < z.size(); ++i) {
    const Real want = expected(z[i]);
    if (!same_bits(lanes[i], want) && !(std::isnan(lanes[i]) && std::isnan(want)) && ++differ <= 5)
      ADD_FAILURE() << name << "(" << std::hexfloat << z[i] << ") " << lanes[i] << " instead of "
                    << want;
  }
  return differ;
}

// The widths this CPU runs: libm alone, and each width of lanes up to the one in use.
std::vector<int> widths_here() {
  std::vector<int> widths{0};
  for (const int width : {4, 8})
    if (width <= libm_lane_width()) widths.push_back(width);
  return widths;
}

TEST(LibmLanes, SigmoidsAreLibmsBitForBit) {
  const std::vector<float> z = arguments();
  for (const int width : widths_here()) {
    SCOPED_TRACE("lanes: " + std::to_string(width));
    std::vector<float> lanes(z.size());
    sigmoids(z.data(), static_cast<int64_t>(z.size()), lanes.data(), width);
    EXPECT_EQ(bits_differing(
                  z, lanes, [](float x) { return sigmoid(x); }, "sigmoid"),
              0)
        << "of " << z.size();
    // Every length of a last partial group, and in place.
    for (int64_t n = 1; n <= 17; ++n) {
      std::vector<float> in_place(z.begin() + 1000000, z.begin() + 1000000 + n);
      sigmoids(in_place.data(), n, in_place.data(), width);
      for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(same_bits(in_place[i], sigmoid(z[1000000 + i])));
    }
  }
}

TEST(LibmLanes, SoftplusIsLibmsBitForBit) {
  const std::vector<float> z = arguments();
  for (const int width : widths_here()) {
    SCOPED_TRACE("lanes: " + std::to_string(width));
    std::vector<double> lanes(z.size());
    softplus_of_minus_abs(z.data(), static_cast<int64_t>(z.size()), lanes.data(), width);
    const auto libm = [](float x) {
      return std::log1p(std::exp(-std::fabs(static_cast<double>(x))));
    };
    EXPECT_EQ(bits_differing(z, lanes, libm, "log1p_exp_minus_abs"), 0) << "of " << z.size();
    // The loss of one row is bce_with_logits() either way.
    for (size_t i = 1000000; i < 1000100; ++i)
      EXPECT_TRUE(same_bits(bce_with_logits(lanes[i], z[i], 1.0f), bce_with_logits(z[i], 1.0f)));
    for (int64_t n = 1; n <= 17; ++n) {
      std::vector<double> out(n);
      softplus_of_minus_abs(z.data() + 1000000, n, out.data(), width);
      for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(same_bits(out[i], lanes[1000000 + i]));
    }
  }
  // The default is the widest width here.
  std::vector<double> widest(64), chosen(64);
  softplus_of_minus_abs(z.data(), 64, widest.data(), libm_lane_width());
  softplus_of_minus_abs(z.data(), 64, chosen.data());
  for (int i = 0; i < 64; ++i) EXPECT_TRUE(same_bits(widest[i], chosen[i]));
  EXPECT_THROW(softplus_of_minus_abs(z.data(), 4, chosen.data(), 16), std::invalid_argument);
}

// Where the lanes were checked against libm (Debian 12's glibc 2.36 on a CPU with AVX2 and FMA,
// as the CI machines), they must be in use: otherwise the evaluation silently runs at libm's pace.
TEST(LibmLanes, InUseWhereLibmIsGlibc236sFmaVariant) {
#if defined(KHSGD_ADDRESS_SANITIZER) || !defined(__x86_64__)
  GTEST_SKIP() << "built without the lanes (sanitizers, or not x86-64)";
#else
  if (std::getenv("KHSGD_LIBM_LANES_CHILD") != nullptr)
    GTEST_SKIP() << "the run this file's last test starts, with FMA hidden from glibc";
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    GTEST_SKIP() << "this CPU has no AVX2 and FMA";
  if (std::string(gnu_get_libc_version()) != "2.36")
    GTEST_SKIP() << "glibc " << gnu_get_libc_version() << ", the lanes were read off 2.36";
  EXPECT_GE(libm_lane_width(), 4);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) {
    EXPECT_EQ(libm_lane_width(), 8);
  }
#endif
}

// With FMA hidden from glibc (a tunable), libm computes exp, expf and log1p with its SSE2
// variants, whose last bits differ from the FMA variants' on some arguments: the probes must
// notice, and every call then goes to libm. The same tests, in a child process so tuned.
TEST(LibmLanes, LeaveItToLibmWhenGlibcPicksItsSse2Variants) {
  if (std::getenv("KHSGD_LIBM_LANES_CHILD") != nullptr) {
    EXPECT_EQ(libm_lane_width(), 0);
    return;
  }
  std::string self(4096, '\0');
  const ssize_t length = readlink("/proc/self/exe", self.data(), self.size() - 1);
  ASSERT_GT(length, 0);
  self.resize(static_cast<size_t>(length));
  const std::string run = "KHSGD_LIBM_LANES_CHILD=1 GLIBC_TUNABLES=glibc.cpu.hwcaps=-FMA '" + self +
                          "' --gtest_filter='LibmLanes.*' > /dev/null";
  EXPECT_EQ(std::system(run.c_str()), 0) << run;
}

}  // namespace
}  // namespace khsgd
