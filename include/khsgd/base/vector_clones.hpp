// Hot loops compiled twice, for AVX2 and for the baseline, the one to run picked at load time
// (GCC/Clang function multiversioning). No FMA either way: -ffp-contract=off and the avx2 target
// has none, so both round exactly alike.
#pragma once

#include "khsgd/base/sanitizers.hpp"

// KHSGD_X86_INTRINSICS: whether the hand-written AVX2 / AVX-512 kernels (intrinsics under target
// attributes, picked at run time by the CPU's features) are built: x86-64 Linux with GCC or Clang,
// not under the sanitizers, which build the portable loops alone.
#if defined(__x86_64__) && defined(__linux__) && !defined(KHSGD_ADDRESS_SANITIZER)
#define KHSGD_X86_INTRINSICS 1
#define KHSGD_VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define KHSGD_X86_INTRINSICS 0
#define KHSGD_VECTOR_CLONES
#endif

#if KHSGD_X86_INTRINSICS
namespace khsgd {

// The instruction sets a hand-written kernel is picked by, asked of the CPU once for every file
// that has such kernels. __builtin_cpu_init() first: a choice kept in a namespace-scope constant is
// made while static objects are initialised, which may be before libgcc has read the features.
struct CpuVectorSets {
  bool avx2, fma, avx512f, avx512dq;
};

inline const CpuVectorSets& cpu_vector_sets() {
  static const CpuVectorSets sets = [] {
    __builtin_cpu_init();
    return CpuVectorSets{__builtin_cpu_supports("avx2") != 0, __builtin_cpu_supports("fma") != 0,
                         __builtin_cpu_supports("avx512f") != 0,
                         __builtin_cpu_supports("avx512dq") != 0};
  }();
  return sets;
}

}  // namespace khsgd
#endif
