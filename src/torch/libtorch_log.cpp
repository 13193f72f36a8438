#include "khsgd/torch/libtorch_log.hpp"

#include <dlfcn.h>
#include <math.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace khsgd {

namespace {

#if defined(KHSGD_TORCH_SLEEF_LIBRARY) && defined(__x86_64__)

using SleefLog8 = __m256 (*)(__m256);

// ATen 1.13's compute_cpu_capability(): ATEN_CPU_CAPABILITY when it names one, else AVX-512 or
// AVX2 where the CPU has AVX2 and FMA (both log with Sleef here), else DEFAULT (glibc's logf).
bool aten_logs_with_sleef() {
  const char* forced = std::getenv("ATEN_CPU_CAPABILITY");
  if (forced != nullptr) {
    if (std::strcmp(forced, "default") == 0) return false;
    if (std::strcmp(forced, "avx2") == 0 || std::strcmp(forced, "avx512") == 0) return true;
  }
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// Sleef's dispatching entry point, as libtorch_cpu calls it (null where it cannot be opened).
SleefLog8 open_sleef() {
  void* library = dlopen(KHSGD_TORCH_SLEEF_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) return nullptr;
  return reinterpret_cast<SleefLog8>(dlsym(library, "Sleef_logf8_u10"));
}

struct LogSource {
  bool sleef = false;        // Sleef, else glibc's logf
  SleefLog8 log8 = nullptr;  // where sleef
  bool usable = false;
};

const LogSource& log_source() {
  static const LogSource source = [] {
    LogSource s;
    s.sleef = aten_logs_with_sleef();
    if (s.sleef) s.log8 = open_sleef();
    s.usable = !s.sleef || s.log8 != nullptr;
    return s;
  }();
  return source;
}

__attribute__((target("avx2"))) void sleef_logs(SleefLog8 log8, const float* x, int64_t n,
                                                float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, log8(_mm256_loadu_ps(x + i)));
  if (i == n) return;
  float last[8] = {1, 1, 1, 1, 1, 1, 1, 1}, logs[8];
  std::memcpy(last, x + i, static_cast<size_t>(n - i) * sizeof(float));
  _mm256_storeu_ps(logs, log8(_mm256_loadu_ps(last)));
  std::memcpy(out + i, logs, static_cast<size_t>(n - i) * sizeof(float));
}

#endif

}  // namespace

bool libtorch_log_without_libtorch() {
#if defined(KHSGD_TORCH_SLEEF_LIBRARY) && defined(__x86_64__)
  return log_source().usable;
#else
  return false;
#endif
}

std::vector<float> libtorch_log_of_multiples(double constant, int64_t count) {
  if (!libtorch_log_without_libtorch())
    throw std::logic_error("torch.log's bits need LibTorch in this build (see libtorch_log.hpp)");
  std::vector<float> values(static_cast<size_t>(count));
  const auto factor = static_cast<float>(constant);
  for (int64_t t = 1; t <= count; ++t) values[t - 1] = static_cast<float>(t) * factor;
#if defined(KHSGD_TORCH_SLEEF_LIBRARY) && defined(__x86_64__)
  const LogSource& source = log_source();
  if (source.sleef) {
    sleef_logs(source.log8, values.data(), count, values.data());
    return values;
  }
#endif
  for (float& v : values) v = logf(v);
  return values;
}

}  // namespace khsgd
