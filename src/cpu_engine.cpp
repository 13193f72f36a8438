#include <algorithm>

#include "khsgd/engine.hpp"

namespace khsgd {

namespace {

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
        local_G_(part_.microbatch * D_),
        gathered_G_(part_.ranks * part_.microbatch * D_),
        mean_grad_(D_) {}

  Device device() const override { return Device::Cpu; }

  void train_epoch(const std::vector<int64_t>& order, Sorter& sorter,
                   Communicator& comm) override {
    const int64_t mb = part_.microbatch, n = part_.ranks;
    const bool pairs = sorter.balances_pairs();
    float* theta = theta_.data();
    float* gbar = mean_grad_.data();
    for (int64_t k = 0; k < part_.num_batches; ++k) {
      const int64_t* rows = order.data() + k * mb;
      if (pairs) {
        per_example_gradients(shard_x_, shard_y_, rows, mb, d_, theta, local_G_.data());
        const float* G = local_G_.data();
        if (n > 1) {
          comm.all_gather(local_G_.data(), gathered_G_.data(), mb * D_, Device::Cpu);
          G = gathered_G_.data();
        }
        mean_of_rows(G, n * mb, D_, gbar);
        sorter.step(G, k);
      } else {
        mean_loss_gradient(shard_x_, shard_y_, rows, mb, d_, theta, gbar);
        if (n > 1) {
          comm.all_reduce_sum(gbar, D_, Device::Cpu);
          for (int64_t j = 0; j < D_; ++j) gbar[j] /= static_cast<float>(n);
        }
      }
      sgd_.step(theta, gbar);
    }
  }

  std::pair<Evaluation, Evaluation> evaluate() override {
    return {khsgd::evaluate(data_.train_x.data(), data_.train_y.data(), part_.used_rows, d_,
                            theta_.data()),
            khsgd::evaluate(data_.test_x.data(), data_.test_y.data(), data_.n_test, d_,
                            theta_.data())};
  }

  std::vector<float> parameters() const override { return theta_; }

 private:
  const Dataset& data_;
  Partition part_;
  int64_t d_, D_;
  const float* shard_x_;
  const float* shard_y_;
  std::vector<float> theta_;
  MomentumSGD sgd_;
  std::vector<float> local_G_, gathered_G_, mean_grad_;
};

}  // namespace

std::unique_ptr<TrainingEngine> make_cpu_engine(const EngineSetup& setup) {
  return std::make_unique<CpuEngine>(setup);
}

}  // namespace khsgd
