// The two libm calls of the CPU's hot loops, for many arguments at once, bit for bit what libm
// returns for each on its own.
//
// The step loop takes one expf per example (the sigmoid of its logit) and the evaluation one exp
// and one log1p per row (the loss). Through libm these are scalar calls, one at a time: a fifth of
// an epoch and over half of an evaluation. Their results must not change (the golden runs compare
// them, and a sweep's numbers must not depend on the build), so the lanes below do not approximate
// them: they are glibc's own algorithms, the variants glibc picks on a CPU with AVX2 and FMA
// (glibc 2.28+ exp and expf, fdlibm's log1p as glibc 2.36 compiles it), each operation and each
// fused multiply-add of its machine code in the same order, four doubles a vector (AVX2) or
// eight (AVX-512).
//
// They run only where they are libm's: on an x86-64 CPU with AVX2 and FMA, and only after this
// process's libm has given the same bits as the lanes for a set of probe arguments, among them
// arguments on which glibc's FMA and SSE2 variants differ (another glibc, a tunable that hides
// FMA, or another C library fails them). Anywhere else every argument goes to libm. Arguments
// outside each algorithm's common path (overflow, underflow, exact zeros, the fdlibm branches for
// tiny or exactly representable cases) go to libm too.
#pragma once

#include <cstdint>

namespace khsgd {

// out[i] = sigmoid(z[i]) = 1.0f / (1.0f + expf(-z[i])) (logistic.hpp's sigmoid), i < n; out may
// be z.
void sigmoids(const float* z, int64_t n, float* out);

// out[i] = log1p(exp(-fabs(double(z[i])))), the softplus of -|z| in bce_with_logits(), i < n.
void softplus_of_minus_abs(const float* z, int64_t n, double* out);

// How many lanes the calls above take at a time in this process: 8 (AVX-512), 4 (AVX2), or 0 (one
// libm call each).
int libm_lane_width();

// The same at a given width, for the tests and benchmarks: 0 (libm), 4 or 8, at most
// libm_lane_width() (std::invalid_argument otherwise).
void sigmoids(const float* z, int64_t n, float* out, int width);
void softplus_of_minus_abs(const float* z, int64_t n, double* out, int width);

}  // namespace khsgd
