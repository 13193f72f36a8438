// The GPU training engine, beside cpu_engine.cpp: the data stays on the device, an epoch of one
// rank is one persistent kernel, and several ranks step around a collective on device memory.
//
// Everything runs on the legacy default stream, which LibTorch's current stream is unless changed:
// c10d's NCCL work orders itself after it, and our kernels after the work.
#include <utility>

#include "cuda_util.cuh"
#include "kernels.cuh"
#include "khsgd/engine.hpp"
#include "khsgd/errors.hpp"

namespace khsgd {

namespace {

using cuda::DeviceBuffer;

class CudaEngine final : public TrainingEngine {
 public:
  CudaEngine(const EngineSetup& setup, int cuda_index)
      : data_(*setup.data), part_(setup.partition), rank_(setup.rank), d_(data_.d), D_(data_.d + 1) {
    KHSGD_CUDA_CHECK(cudaSetDevice(cuda_index));
    if (!cuda::fits_fused_kernel(d_, part_.microbatch))
      throw UserError("--device cuda takes at most " + std::to_string(cuda::kMaxSharedFloats) +
                      " floats of (B / ranks + 2) * (d + 1) per step; use --device cpu for B " +
                      std::to_string(part_.batch) + " with d " + std::to_string(d_));
    train_x_.upload(data_.train_x);
    train_y_.upload(data_.train_y);
    test_x_.upload(data_.test_x);
    test_y_.upload(data_.test_y);
    theta_.upload(setup.theta);
    velocity_.resize(D_);
    velocity_.zero();
    order_.resize(part_.shard_rows);
    local_.resize(part_.microbatch * D_);
    totals_.resize(1);
    args_.X = train_x_.data() + rank_ * part_.shard_rows * d_;
    args_.y = train_y_.data() + rank_ * part_.shard_rows;
    args_.order = order_.data();
    args_.d = d_;
    args_.microbatch = part_.microbatch;
    args_.steps = part_.num_batches;
    args_.theta = theta_.data();
    args_.velocity = velocity_.data();
    args_.neg_lr = static_cast<float>(-setup.lr);
    args_.momentum = static_cast<float>(setup.momentum);
  }

  Device device() const override { return Device::Cuda; }

  void train_epoch(const std::vector<int64_t>& order, Sorter& sorter,
                   Communicator& comm) override {
    const bool pairs = sorter.balances_pairs();
    const int64_t n = part_.ranks, mb = part_.microbatch, steps = part_.num_batches;
    const int64_t step_floats = n * mb * D_;
    if (pairs && gradients_.size() == 0) gradients_.resize(steps * step_floats);
    order_.upload(order.data(), order.size());
    args_.gradients = pairs ? gradients_.data() : nullptr;

    if (n == 1) {
      cuda::launch_fused_epoch(args_, nullptr);
    } else {
      for (int64_t k = 0; k < steps; ++k) {
        cuda::launch_step_gradients(args_, k, pairs, local_.data(), nullptr);
        if (pairs) {
          float* gathered = gradients_.data() + k * step_floats;
          comm.all_gather(local_.data(), gathered, mb * D_, Device::Cuda);
          cuda::launch_step_update(args_, gathered, n * mb, /*mean_rows=*/true, 1.0f, nullptr);
        } else {
          comm.all_reduce_sum(local_.data(), D_, Device::Cuda);
          cuda::launch_step_update(args_, local_.data(), 1, /*mean_rows=*/false,
                                   static_cast<float>(n), nullptr);
        }
      }
    }
    if (pairs) {
      if (sorter.device() == Device::Cuda) {
        sorter.balance_epoch(gradients_.data(), steps);
      } else {
        const std::vector<float> host = gradients_.download(steps * step_floats);
        sorter.balance_epoch(host.data(), steps);
      }
    }
    KHSGD_CUDA_CHECK(cudaDeviceSynchronize());
  }

  std::pair<Evaluation, Evaluation> evaluate() override {
    return {evaluate_rows(train_x_.data(), train_y_.data(), part_.used_rows),
            evaluate_rows(test_x_.data(), test_y_.data(), data_.n_test)};
  }

  std::vector<float> parameters() const override { return theta_.download(D_); }

 private:
  Evaluation evaluate_rows(const float* X, const float* y, int64_t rows) {
    cuda::launch_evaluate(X, y, rows, d_, theta_.data(), totals_.data(), nullptr);
    const cuda::EvalTotals totals = totals_.download(1)[0];
    Evaluation e;
    e.rows = rows;
    e.correct = static_cast<int64_t>(totals.correct);
    e.loss = totals.loss / rows;
    e.accuracy = static_cast<double>(e.correct) / rows;
    return e;
  }

  const Dataset& data_;
  Partition part_;
  int rank_;
  int64_t d_, D_;
  DeviceBuffer<float> train_x_, train_y_, test_x_, test_y_;
  DeviceBuffer<float> theta_, velocity_, local_, gradients_;
  DeviceBuffer<int64_t> order_;
  DeviceBuffer<cuda::EvalTotals> totals_;
  cuda::EpochArgs args_;
};

}  // namespace

void select_cuda_device(int cuda_index) { KHSGD_CUDA_CHECK(cudaSetDevice(cuda_index)); }

std::unique_ptr<TrainingEngine> make_cuda_engine(const EngineSetup& setup, int cuda_index) {
  return std::make_unique<CudaEngine>(setup, cuda_index);
}

}  // namespace khsgd
