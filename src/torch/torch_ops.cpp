#include "khsgd/torch/torch_ops.hpp"

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/nn/init.h>
#include <torch/version.h>

#include <cmath>
#include <mutex>

namespace khsgd {

namespace {

template <typename T>
std::vector<T> to_vector(const at::Tensor& tensor) {
  const at::Tensor host = tensor.to(at::kCPU).contiguous();
  return std::vector<T>(host.data_ptr<T>(), host.data_ptr<T>() + host.numel());
}

at::Generator default_generator(Device device, int cuda_index) {
  return device == Device::Cuda ? at::globalContext().defaultGenerator(at::Device(
                                      at::kCUDA, static_cast<c10::DeviceIndex>(cuda_index)))
                                : at::globalContext().defaultGenerator(at::Device(at::kCPU));
}

std::vector<float> log_of_multiples_on(const at::Device& device, double constant, int64_t count) {
  const at::Tensor t =
      at::arange(1, count + 1, at::TensorOptions().dtype(at::kFloat).device(device));
  return to_vector<float>(at::log(t * constant));
}

class TorchOps final : public DeviceOps {
 public:
  TorchOps(Device device, int cuda_index)
      : device_(device == Device::Cuda
                    ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(cuda_index))
                    : at::Device(at::kCPU)) {}

  std::vector<int64_t> randperm(int64_t m) override {
    return to_vector<int64_t>(
        at::randperm(m, at::TensorOptions().dtype(at::kLong).device(device_)));
  }

  std::vector<float> uniform(int64_t count, double from, double to) override {
    return to_vector<float>(
        at::empty({count}, at::TensorOptions().dtype(at::kFloat).device(device_))
            .uniform_(from, to));
  }

  std::vector<float> log_of_multiples(double constant, int64_t count) override {
    return log_of_multiples_on(device_, constant, count);
  }

 private:
  at::Device device_;
};

}  // namespace

std::unique_ptr<DeviceOps> make_torch_ops(Device device, int cuda_index) {
  return std::make_unique<TorchOps>(device, cuda_index);
}

std::vector<float> torch_cpu_log_of_multiples(double constant, int64_t count) {
  return log_of_multiples_on(at::Device(at::kCPU), constant, count);
}

void seed_generators(uint64_t seed) {
  // at::manual_seed seeds the CPU generator and every CUDA device's (as torch.manual_seed does).
  at::manual_seed(seed);
}

std::vector<float> init_linear_parameters(int64_t d) {
  // torch::nn::LinearImpl::reset_parameters: kaiming_uniform_(weight, a = sqrt(5)), then bias
  // uniform_(-1/sqrt(fan_in), 1/sqrt(fan_in)), both on the CPU generator.
  at::Tensor weight = at::empty({1, d}, at::kFloat);
  at::Tensor bias = at::empty({1}, at::kFloat);
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  const double bound = 1.0 / std::sqrt(static_cast<double>(d));
  torch::nn::init::uniform_(bias, -bound, bound);
  std::vector<float> theta = to_vector<float>(weight.reshape({d}));
  theta.push_back(bias.item<float>());
  return theta;
}

std::vector<uint8_t> generator_state(Device device, int cuda_index) {
  at::Generator generator = default_generator(device, cuda_index);
  std::lock_guard<std::mutex> lock(generator.mutex());
  const at::Tensor state = generator.get_state().contiguous();
  return std::vector<uint8_t>(state.data_ptr<uint8_t>(), state.data_ptr<uint8_t>() + state.numel());
}

void set_generator_state(Device device, int cuda_index, const std::vector<uint8_t>& state) {
  at::Generator generator = default_generator(device, cuda_index);
  at::Tensor tensor = at::empty({static_cast<int64_t>(state.size())}, at::kByte);
  std::copy(state.begin(), state.end(), tensor.data_ptr<uint8_t>());
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(tensor);
}

bool cuda_available() { return torch::cuda::is_available(); }

int cuda_device_count() { return static_cast<int>(torch::cuda::device_count()); }

std::string torch_version() { return TORCH_VERSION; }

}  // namespace khsgd
