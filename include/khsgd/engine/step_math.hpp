// The per-parameter arithmetic of an SGD step, shared by the CPU engine (model.cpp) and the CUDA
// kernels so that both round alike: the mean of a step's gradient rows and the momentum update.
#pragma once

#include <cstdint>

#include "khsgd/base/host_device.hpp"

namespace khsgd {

// Column j of rows [count, D] averaged as gathered.mean(dim=(0, 1)): the rows added in order
// from the first, then one division.
KHSGD_HOST_DEVICE inline float column_mean(const float* rows, int64_t count, int64_t D, int64_t j) {
  float g = rows[j];
  for (int64_t i = 1; i < count; ++i) g += rows[i * D + j];
  return g / static_cast<float>(count);
}

// SGD with momentum for one parameter, as torchopt.sgd(lr, momentum) applies it: v <- mu v + g
// (t.mul_(momentum).add_(g)), then theta <- theta + (-lr v) (updates.mul_(-lr); p.add_(update)),
// each op rounded to float32 on its own.
KHSGD_HOST_DEVICE inline void momentum_update(float g, float momentum, float neg_lr,
                                              float* velocity, float* theta) {
  const float v = *velocity * momentum + g;
  *velocity = v;
  const float update = v * neg_lr;
  *theta = *theta + update;
}

}  // namespace khsgd
