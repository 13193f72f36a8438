#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <numeric>

#include "khsgd/engine.hpp"

namespace khsgd {

namespace {

using Clock = std::chrono::steady_clock;

// Times the phases of the steps it is told to, adding each phase's seconds to its category.
// Reading the clock costs about as much as a tenth of a step, so without --profile only every
// kStride-th step is timed and the totals are scaled up.
class PhaseTimer {
 public:
  static constexpr int64_t kStride = 64;
  explicit PhaseTimer(bool every_step) : stride_(every_step ? 1 : kStride) {}
  void start_step(int64_t k) {
    timed_ = k % stride_ == 0;
    if (timed_) last_ = Clock::now();
  }
  void lap(double* category) {
    if (!timed_) return;
    const auto now = Clock::now();
    *category += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }
  void finish(EpochTimes* times) const {
    for (double* t : {&times->sorter, &times->communication, &times->dataset, &times->forward_backward,
                      &times->sgd})
      *t *= static_cast<double>(stride_);
    times->estimated = stride_ > 1;
  }

 private:
  int64_t stride_;
  bool timed_ = false;
  Clock::time_point last_;
};

// The step loop on plain host arrays. A step is ~2 000 flops, so the loop is bound by the latency
// of dependent steps: no allocation, no tensor op and no virtual call but the sorter's per step.
class CpuEngine final : public TrainingEngine {
 public:
  explicit CpuEngine(const EngineSetup& setup)
      : data_(*setup.data),
        part_(setup.partition),
        d_(setup.data->d),
        D_(setup.data->d + 1),
        shard_x_(data_.train_x.data() + setup.rank * part_.shard_rows * d_),
        shard_y_(data_.train_y.data() + setup.rank * part_.shard_rows),
        theta_(setup.theta),
        sgd_(D_, setup.lr, setup.momentum),
        batch_x_(part_.microbatch * d_),
        batch_y_(part_.microbatch),
        batch_rows_(part_.microbatch),
        local_G_(part_.microbatch * D_),
        gathered_G_(part_.ranks * part_.microbatch * D_),
        mean_grad_(D_) {
    std::iota(batch_rows_.begin(), batch_rows_.end(), 0);
  }

  EpochTimes train_epoch(const std::vector<int64_t>& order, Sorter& sorter, Communicator& comm,
                         const EpochHooks& hooks) override {
    const int64_t mb = part_.microbatch, n = part_.ranks, step_rows = n * mb;
    const bool pairs = sorter.balances_pairs();
    const bool per_example = pairs || hooks.capture != nullptr;
    float* theta = theta_.data();
    float* gbar = mean_grad_.data();
    const int64_t* batch = batch_rows_.data();
    EpochTimes times;
    PhaseTimer timer(hooks.profile);
    constexpr int64_t kObserveStride = 256;
    for (int64_t k = 0; k < part_.num_batches; ++k) {
      timer.start_step(k);
      // The step's examples, copied together as the reference's X = trainset[perm[batch]].
      const int64_t* rows = order.data() + k * mb;
      for (int64_t i = 0; i < mb; ++i) {
        std::memcpy(&batch_x_[i * d_], shard_x_ + rows[i] * d_, d_ * sizeof(float));
        batch_y_[i] = shard_y_[rows[i]];
      }
      timer.lap(&times.dataset);
      if (per_example)
        per_example_gradients(batch_x_.data(), batch_y_.data(), batch, mb, d_, theta, local_G_.data());
      if (!pairs) mean_loss_gradient(batch_x_.data(), batch_y_.data(), batch, mb, d_, theta, gbar);
      timer.lap(&times.forward_backward);
      const float* G = local_G_.data();
      if (per_example && n > 1) {
        comm.all_gather(local_G_.data(), gathered_G_.data(), mb * D_, Device::Cpu);
        G = gathered_G_.data();
      }
      if (pairs) {
        mean_of_rows(G, step_rows, D_, gbar);
      } else if (n > 1) {
        comm.all_reduce_sum(gbar, D_, Device::Cpu);
        for (int64_t j = 0; j < D_; ++j) gbar[j] /= static_cast<float>(n);
      }
      if (hooks.capture) std::copy(G, G + step_rows * D_, hooks.capture + k * step_rows * D_);
      timer.lap(&times.communication);
      if (pairs) sorter.step(G, k);
      timer.lap(&times.sorter);
      sgd_.step(theta, gbar);
      timer.lap(&times.sgd);
      if (hooks.observer && ((k + 1) % kObserveStride == 0 || k + 1 == part_.num_batches))
        hooks.observer->on_steps(k + 1, microbatch_loss(batch_x_.data(), batch_y_.data(), batch, mb,
                                                        d_, theta));
    }
    timer.finish(&times);
    return times;
  }

  std::pair<Evaluation, Evaluation> evaluate() override {
    return {khsgd::evaluate(data_.train_x.data(), data_.train_y.data(), part_.used_rows, d_,
                            theta_.data()),
            khsgd::evaluate(data_.test_x.data(), data_.test_y.data(), data_.n_test, d_,
                            theta_.data())};
  }

  std::vector<float> parameters() const override { return theta_; }
  std::vector<float> velocity() const override { return sgd_.velocity(); }
  void restore(const std::vector<float>& theta, const std::vector<float>& velocity) override {
    theta_ = theta;
    sgd_.velocity() = velocity;
  }

 private:
  const Dataset& data_;
  Partition part_;
  int64_t d_, D_;
  const float* shard_x_;
  const float* shard_y_;
  std::vector<float> theta_;
  MomentumSGD sgd_;
  std::vector<float> batch_x_, batch_y_;
  std::vector<int64_t> batch_rows_;
  std::vector<float> local_G_, gathered_G_, mean_grad_;
};

}  // namespace

std::unique_ptr<TrainingEngine> make_cpu_engine(const EngineSetup& setup) {
  return std::make_unique<CpuEngine>(setup);
}

}  // namespace khsgd
