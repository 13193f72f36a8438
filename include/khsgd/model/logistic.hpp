// The arithmetic of one example, shared by the CPU loops (model.cpp) and the CUDA kernels, so both
// engines round the same way.
#pragma once

#include <math.h>

#include <cstdint>

#include "khsgd/base/host_device.hpp"

namespace khsgd {

// z = w.x + b as torch.nn.Linear computes it in float32. The dot product is accumulated in double
// and rounded once: whatever order a BLAS uses, this is within an ulp of it, and it is the same
// on every device whatever order the partial sums come in.
KHSGD_HOST_DEVICE inline float logit_from_dot(double dot, float bias) {
  return static_cast<float>(dot) + bias;
}

KHSGD_HOST_DEVICE inline float logit(const float* x, const float* theta, int64_t d) {
  double dot = 0.0;
  for (int64_t j = 0; j < d; ++j) dot += static_cast<double>(x[j]) * theta[j];
  return logit_from_dot(dot, theta[d]);
}

// sigmoid(z) = 1 / (1 + exp(-z)) in float32, as torch.sigmoid.
KHSGD_HOST_DEVICE inline float sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }

// d loss / d z of binary cross-entropy with logits: sigma(z) - y.
KHSGD_HOST_DEVICE inline float residual(float z, float y) { return sigmoid(z) - y; }

// log(1 + exp(-|z|)) in double, the first term of the loss below (libm_lanes.hpp computes it for
// many rows at once, with these bits).
KHSGD_HOST_DEVICE inline double log1p_exp_minus_abs(float z) {
  return log1p(exp(-fabs(static_cast<double>(z))));
}

// Binary cross-entropy with logits of one example, in double: log(1 + exp(-|z|)) + max(z, 0) - z y,
// given its first term.
KHSGD_HOST_DEVICE inline double bce_with_logits(double log1p_exp_minus_abs_z, float z, float y) {
  const double zd = z;
  return log1p_exp_minus_abs_z + (zd > 0 ? zd : 0.0) - zd * y;
}
KHSGD_HOST_DEVICE inline double bce_with_logits(float z, float y) {
  return bce_with_logits(log1p_exp_minus_abs(z), z, y);
}

}  // namespace khsgd
