// KH-SGD's float32 log table, torch.log(torch.arange(1, count + 1, dtype=float32) * constant) on
// the CPU, computed without LibTorch where this build's LibTorch is known to compute it from a
// library khsgd can call itself.
//
// Debian's LibTorch 1.13 (built without MKL) takes float32 logs from the system's Sleef
// (libsleef.so.3: Sleef_logf8_u10 in its AVX2 kernels, Sleef_logf16_u10 in its AVX-512 kernels,
// the same bits, checked) and, at ATen's CPU capability DEFAULT, from glibc's logf; the product
// t * constant is rounded to float32 first (the scalar is a float32 operand). CMake finds the Sleef
// library among libtorch_cpu's own (KHSGD_TORCH_SLEEF_LIBRARY). PyPI's LibTorch takes MKL's vsLn,
// which only LibTorch can call as it does: there, and wherever the library cannot be opened,
// libtorch_log_without_libtorch() is false and KH-SGD's runs go to khsgd_train_run.
#pragma once

#include <cstdint>
#include <vector>

namespace khsgd {

// Whether libtorch_log_of_multiples() can run in this process.
bool libtorch_log_without_libtorch();

// The table (std::logic_error where libtorch_log_without_libtorch() is false).
std::vector<float> libtorch_log_of_multiples(double constant, int64_t count);

}  // namespace khsgd
