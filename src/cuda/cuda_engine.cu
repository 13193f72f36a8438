// The GPU training engine, beside cpu_engine.cpp: the data stays on the device, an epoch of one
// rank is one persistent kernel (with the pair sorter's decisions made beside the steps), and
// several ranks step around a collective on device memory. Pair sorters are the CUDA ones
// (cuda_sorters.cu): the gathered gradients never leave the device.
//
// Everything runs on the legacy default stream, which LibTorch's current stream is unless changed:
// c10d's NCCL work orders itself after it, and our kernels after the work.
#include <algorithm>
#include <chrono>
#include <limits>
#include <utility>

#include "cuda_util.cuh"
#include "kernels.cuh"
#include "khsgd/base/errors.hpp"
#include "khsgd/engine/engine.hpp"

namespace khsgd {

namespace {

using cuda::DeviceBuffer;

// Wall-clock laps for --profile: synchronises the device before each reading, so each phase's
// kernels are counted in their own category. Without --profile it only reads the clock.
class Stopwatch {
 public:
  explicit Stopwatch(bool synchronise) : synchronise_(synchronise), last_(Clock::now()) {}
  void lap(double* category) {
    if (synchronise_) KHSGD_CUDA_CHECK(cudaDeviceSynchronize());
    const auto now = Clock::now();
    *category += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool synchronise_;
  Clock::time_point last_;
};

class CudaEngine final : public TrainingEngine {
 public:
  CudaEngine(const EngineSetup& setup, int cuda_index)
      : data_(*setup.data),
        part_(setup.partition),
        rank_(setup.rank),
        d_(part_.features()),
        D_(part_.D) {
    KHSGD_CUDA_CHECK(cudaSetDevice(cuda_index));
    if (!cuda::fits_fused_kernel(part_.geometry()))
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
    mean_.resize(D_);
    totals_.resize(1);
    KHSGD_CUDA_CHECK(cudaEventCreate(&kernel_start_));
    KHSGD_CUDA_CHECK(cudaEventCreate(&kernel_end_));
    args_.X = train_x_.data() + rank_ * part_.shard_rows * d_;
    args_.y = train_y_.data() + rank_ * part_.shard_rows;
    args_.order = order_.data();
    args_.geometry = part_.geometry();
    args_.steps = part_.num_batches;
    args_.theta = theta_.data();
    args_.velocity = velocity_.data();
    args_.neg_lr = static_cast<float>(-setup.lr);
    args_.momentum = static_cast<float>(setup.momentum);
  }

  ~CudaEngine() override {
    cudaEventDestroy(kernel_start_);
    cudaEventDestroy(kernel_end_);
  }

  EpochTimes train_epoch(const std::vector<int64_t>& order, Sorter& sorter, Communicator& comm,
                         const EpochHooks& hooks) override {
    // The GPU engine computes per-example gradients only to gather them (GradientNeed::AllRanks);
    // the registry gives OwnRank sorters no CUDA factory.
    if (sorter.needs() == GradientNeed::OwnRank)
      throw UserError(
          "this sorter needs its own rank's gradients, which the GPU engine does not "
          "hand out; use --device cpu");
    const bool pairs = sorter.needs() == GradientNeed::AllRanks;
    const bool capture = hooks.capture != nullptr;
    const int64_t n = part_.ranks, steps = part_.num_batches;
    const int64_t step_floats = n * part_.microbatch * D_;
    // Pair sorters keep every step's gathered rows for their pass; D-RR only when they are saved.
    if ((pairs || capture) && gradients_.size() == 0) gradients_.resize(steps * step_floats);
    EpochTimes times;
    Stopwatch watch(hooks.profile);

    order_.upload(order.data(), order.size());
    watch.lap(&times.dataset);
    args_.gradients = pairs ? gradients_.data() : nullptr;
    args_.captured = !pairs && capture && n == 1 && !hooks.profile ? gradients_.data() : nullptr;

    const bool fused = n == 1 && !hooks.profile;
    if (fused) {
      // One persistent kernel, the pair sorter's pass beside the steps where it fits; timed by
      // events, so no synchronisation inside the epoch.
      cuda::PairBalanceArgs pass;
      const bool beside = pairs && sorter.pass_beside_steps(gradients_.data(), steps, &pass);
      KHSGD_CUDA_CHECK(cudaEventRecord(kernel_start_, nullptr));
      cuda::launch_fused_epoch(args_, beside ? &pass : nullptr, nullptr);
      KHSGD_CUDA_CHECK(cudaEventRecord(kernel_end_, nullptr));
      if (pairs && !beside) sorter.balance(gradients_.data(), 0, steps);
    } else {
      step_by_step(pairs, capture, comm, &watch, &times);
      if (pairs) sorter.balance(gradients_.data(), 0, steps);
    }
    KHSGD_CUDA_CHECK(cudaDeviceSynchronize());
    watch.lap(&times.sorter);
    if (fused) {
      float kernel_ms = 0.0f;
      KHSGD_CUDA_CHECK(cudaEventElapsedTime(&kernel_ms, kernel_start_, kernel_end_));
      // The whole fused epoch: data, forward-backward, SGD and the pass beside them.
      times.forward_backward = kernel_ms / 1000.0;
      times.sorter = std::max(0.0, times.sorter - times.forward_backward);
    }
    // Without --profile, host clocks see kernels only when the device is waited for.
    times.estimated = !hooks.profile;
    if (capture) {
      KHSGD_CUDA_CHECK(cudaMemcpy(hooks.capture, gradients_.data(),
                                  steps * step_floats * sizeof(float), cudaMemcpyDeviceToHost));
    }
    if (hooks.observer) hooks.observer->on_steps(steps, std::numeric_limits<double>::quiet_NaN());
    return times;
  }

  std::pair<Evaluation, Evaluation> evaluate() override {
    return {evaluate_rows(train_x_.data(), train_y_.data(), part_.used_rows),
            evaluate_rows(test_x_.data(), test_y_.data(), data_.n_test)};
  }

  std::vector<float> parameters() const override { return theta_.download(D_); }
  std::vector<float> velocity() const override { return velocity_.download(D_); }
  void restore(const std::vector<float>& theta, const std::vector<float>& velocity) override {
    theta_.upload(theta.data(), D_);
    velocity_.upload(velocity.data(), D_);
  }

 private:
  // Several ranks or --profile: each step's kernels around the collective.
  void step_by_step(bool pairs, bool capture, Communicator& comm, Stopwatch* watch,
                    EpochTimes* times) {
    const int64_t n = part_.ranks, mb = part_.microbatch;
    const int64_t step_floats = n * mb * D_;
    for (int64_t k = 0; k < part_.num_batches; ++k) {
      float* gathered = (pairs || capture) ? gradients_.data() + k * step_floats : nullptr;
      if (pairs || capture) {
        float* rows_out = n == 1 ? gathered : local_.data();
        if (pairs)
          cuda::launch_step_gradients(args_, k, /*per_example=*/true, rows_out, nullptr);
        else
          cuda::launch_step_rows(args_, k, rows_out, nullptr);
        watch->lap(&times->forward_backward);
        if (n > 1) comm.all_gather(local_.data(), gathered, mb * D_, Device::Cuda);
        watch->lap(&times->communication);
      }
      if (pairs) {
        cuda::launch_step_update(args_, gathered, n * mb, /*mean_rows=*/true, 1.0f, nullptr);
      } else {
        cuda::launch_step_gradients(args_, k, /*per_example=*/false, mean_.data(), nullptr);
        watch->lap(&times->forward_backward);
        if (n > 1) comm.all_reduce_sum(mean_.data(), D_, Device::Cuda);
        watch->lap(&times->communication);
        cuda::launch_step_update(args_, mean_.data(), 1, /*mean_rows=*/false, static_cast<float>(n),
                                 nullptr);
      }
      watch->lap(&times->sgd);
    }
  }

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
  DeviceBuffer<float> theta_, velocity_, local_, mean_, gradients_;
  cudaEvent_t kernel_start_ = nullptr, kernel_end_ = nullptr;
  DeviceBuffer<int64_t> order_;
  DeviceBuffer<cuda::EvalTotals> totals_;
  cuda::EpochArgs args_;
};

}  // namespace

double peak_cuda_mib() { return cuda::device_bytes_peak().load() / (1024.0 * 1024.0); }

void select_cuda_device(int cuda_index) { KHSGD_CUDA_CHECK(cudaSetDevice(cuda_index)); }

int visible_cuda_devices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();  // no driver or no device: nothing to see, nothing left pending
    return 0;
  }
  return count;
}

std::unique_ptr<TrainingEngine> make_cuda_engine(const EngineSetup& setup, int cuda_index) {
  return std::make_unique<CudaEngine>(setup, cuda_index);
}

}  // namespace khsgd
