// The few numbers whose exact bits must come from LibTorch itself.
//
// A seed reproduces the reference only if every random draw comes from the same generator, in the
// same order, through the same algorithm (ALGORITHM.md §5): the Linear init from the CPU
// generator, randperm and uniform_ from the training device's generator. KH-SGD's float32 log
// table is computed by torch.log on the device too, so it is taken from there as well.
// Everything else in khsgd runs on plain arrays.
//
// Two implementations: torch_ops.cpp (LibTorch) and without_torch.cpp, linked into khsgd_train,
// the binary that runs what needs no LibTorch (trainer.hpp's run_needs_libtorch says which runs),
// where these functions say they are not there.
//
// torch_ops.cpp is a library of its own, khsgd_torch_draws (installed: khsgd::torch_draws), so that
// a program using the sorters library (khsgd_sorters.hpp) gets the reference's draws by linking it
// alone; it links LibTorch privately.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "khsgd/base/device.hpp"
#include "khsgd/sorting/device_ops.hpp"

namespace khsgd {

// DeviceOps backed by LibTorch's default generator of `device` (CUDA: device `cuda_index`'s).
std::unique_ptr<DeviceOps> make_torch_ops(Device device, int cuda_index = 0);

// torch.manual_seed(seed): the CPU generator and, where there is one, every CUDA generator.
void seed_generators(uint64_t seed);

// theta = [w; b] of torch::nn::Linear(d, 1) freshly constructed: draws d + 1 numbers from the CPU
// generator, weight first.
std::vector<float> init_linear_parameters(int64_t d);

// KH-SGD's float32 log table on the CPU: torch.log(constant * torch.arange(1, count + 1,
// dtype=float32)), LibTorch's own bits (cpu_generator.hpp's CpuOps takes it from here).
std::vector<float> torch_cpu_log_of_multiples(double constant, int64_t count);

// The default generator's state of `device` (for checkpoints), and restoring it.
std::vector<uint8_t> generator_state(Device device, int cuda_index = 0);
void set_generator_state(Device device, int cuda_index, const std::vector<uint8_t>& state);

bool cuda_available();
int cuda_device_count();
std::string torch_version();

}  // namespace khsgd
