#include "pair_kernel_runner.hpp"

#include "cuda_util.cuh"
#include "kernels.cuh"

namespace khsgd_test {

namespace {

using khsgd::cuda::DeviceBuffer;

template <typename T>
void upload_if_any(DeviceBuffer<T>* buffer, const std::vector<T>& host) {
  if (!host.empty()) buffer->upload(host);
}

}  // namespace

void run_pair_kernel(PairKernelChoice kernel, int64_t first_step, int64_t steps,
                     PairPassData* data) {
  DeviceBuffer<float> gradients, sum, thresholds, log_penalty, uniforms;
  DeviceBuffer<int64_t> orders, next_orders;
  DeviceBuffer<khsgd::PairCursor> cursor;
  gradients.upload(data->gradients);
  sum.upload(data->sum);
  orders.upload(data->orders);
  next_orders.upload(data->next_orders);
  cursor.upload(std::vector<khsgd::PairCursor>{data->cursor});
  upload_if_any(&thresholds, data->thresholds);
  upload_if_any(&log_penalty, data->log_penalty);
  upload_if_any(&uniforms, data->uniforms);

  const khsgd::PairRuleTables tables{data->rule, thresholds.data(), log_penalty.data(),
                                     uniforms.data()};
  const khsgd::cuda::PairBalanceArgs args{
      tables,        data->layout,       gradients.data(), first_step,   steps,
      orders.data(), next_orders.data(), sum.data(),       cursor.data()};
  const khsgd::cuda::PairKernel choice =
      kernel == PairKernelChoice::Registers1   ? khsgd::cuda::PairKernel::Registers1
      : kernel == PairKernelChoice::Registers4 ? khsgd::cuda::PairKernel::Registers4
                                               : khsgd::cuda::PairKernel::SharedMemory;
  khsgd::cuda::launch_pair_balance(args, nullptr, choice);
  KHSGD_CUDA_CHECK(cudaDeviceSynchronize());
  data->next_orders = next_orders.download(next_orders.size());
  data->sum = sum.download(sum.size());
  data->cursor = cursor.download(1)[0];
}

}  // namespace khsgd_test
