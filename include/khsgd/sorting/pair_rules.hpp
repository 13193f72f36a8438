// The sign rules of the pair-balancing sorters (ALGORITHM.md §4.3-§4.5), one decision each: does
// the pair's difference Delta go in as + (first example to the front, s += Delta) or - (to the
// back, s -= Delta)?
//
// Header-only and free of LibTorch so that the CPU sorters and the CUDA kernels share one copy.
#pragma once

#include <cmath>

#include "khsgd/base/host_device.hpp"

namespace khsgd {

// CD-GraB (greedy): + iff <s, Delta> <= 0.
KHSGD_HOST_DEVICE inline bool cdgrab_adds(float inner) { return inner <= 0.0f; }

// Self-balancing walk: + iff <s, Delta> <= scale * (1 - 2 u_t), the threshold drawn up front.
KHSGD_HOST_DEVICE inline bool sbw_adds(float inner, float threshold) { return inner <= threshold; }

// Kernel halving with a self-tuning threshold: the reference's get_swap_decision, a TorchScript
// function whose float arguments are doubles. bsq = |Delta|^2, log_pen and u are float32 values
// widened to double; tau ("two sigma squared") is double state carried between decisions.
//
// bsq = 0 (two identical examples) must reproduce the reference's IEEE outcome: ratio is NaN
// (tau = 0) or +inf, so the else branch runs, tau stays as it is (update is NaN or -inf) and the
// threshold u * ratio * bsq is NaN, so every "inner <= threshold" comparison is false.
KHSGD_HOST_DEVICE inline bool khsgd_adds(double bsq, double log_pen, double u, double inner,
                                         double* tau) {
  double ratio = *tau * log_pen / bsq;
  if (ratio <= 1) {
    *tau = 2 * bsq;
    if (inner <= 0) return u >= 0 ? true : inner <= u * bsq;
    return u <= 0 ? false : inner <= u * bsq;
  }
  ratio = sqrt(ratio);
  const double update = log_pen + 0.5 - ratio;
  if (update > 0) *tau = *tau + 2 * bsq * update / log_pen;
  if (inner <= 0) return u >= 0 ? true : inner <= u * ratio * bsq;
  return u <= 0 ? false : inner <= u * ratio * bsq;
}

}  // namespace khsgd
