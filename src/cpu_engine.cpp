#include <algorithm>
#include <chrono>
#include <limits>

#include "khsgd/engine.hpp"
#include "khsgd/microbatch.hpp"

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
        batch_(part_.microbatch, d_),
        local_G_(part_.microbatch * D_),
        gathered_G_(part_.ranks * part_.microbatch * D_),
        mean_grad_(D_) {}

  Device device() const override { return Device::Cpu; }

  EpochTimes train_epoch(const std::vector<int64_t>& order, Sorter& sorter, Communicator& comm,
                         const EpochHooks& hooks) override {
    const int64_t mb = part_.microbatch, n = part_.ranks, step_rows = n * mb;
    const bool pairs = sorter.balances_pairs();
    const bool per_example = pairs || hooks.capture != nullptr;
    float* theta = theta_.data();
    float* gbar = mean_grad_.data();
    EpochTimes times;
    PhaseTimer timer(hooks.profile);
    constexpr int64_t kObserveStride = 256;
    for (int64_t k = 0; k < part_.num_batches; ++k) {
      timer.start_step(k);
      // The step's examples, copied together as the reference's X = trainset[perm[batch]]; the
      // next step's are fetched from memory meanwhile.
      const int64_t* rows = order.data() + k * mb;
      if (k + 1 < part_.num_batches) Microbatch::prefetch(shard_x_, shard_y_, rows + mb, mb, d_);
      batch_.gather(shard_x_, shard_y_, rows, mb);
      timer.lap(&times.dataset);
      if (per_example) batch_.per_example_gradients(theta, local_G_.data());
      if (!pairs) batch_.mean_loss_gradient(theta, gbar);
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
        hooks.observer->on_steps(k + 1, microbatch_loss(shard_x_, shard_y_, rows, mb, d_, theta));
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
  Microbatch batch_;
  std::vector<float> local_G_, gathered_G_, mean_grad_;
};

}  // namespace

std::unique_ptr<TrainingEngine> make_cpu_engine(const EngineSetup& setup) {
  return std::make_unique<CpuEngine>(setup);
}

}  // namespace khsgd
