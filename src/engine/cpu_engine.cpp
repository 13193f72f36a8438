#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <system_error>

#include "khsgd/engine/engine.hpp"
#include "khsgd/engine/microbatch.hpp"
#include "khsgd/engine/sorter_pipeline.hpp"
#include "khsgd/model/feature_blocks.hpp"

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
    for (double* t : {&times->sorter, &times->communication, &times->dataset,
                      &times->forward_backward, &times->sgd})
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
//
// The workers here are this rank alone, or with --in_process all n workers. Then a step gathers
// every worker's examples in rank order, which is the gathered G of n ranks row for row (the
// examples' gradients are independent and all workers share theta), and the sorters that take no
// gathered rows (GradientNeed None, OwnRank) add the workers' gradients in rank order as the
// backends' all-reduce does: the same numbers, bit for bit.
class CpuEngine final : public TrainingEngine {
 public:
  explicit CpuEngine(const EngineSetup& setup)
      : data_(*setup.data),
        part_(setup.partition),
        d_(part_.features()),
        D_(part_.D),
        first_worker_(setup.in_process ? 0 : setup.rank),
        workers_here_(setup.in_process ? part_.ranks : 1),
        threads_(setup.threads),
        theta_(setup.theta),
        sgd_(D_, setup.lr, setup.momentum),
        batch_(workers_here_ * part_.microbatch, d_),
        rows_(workers_here_ * part_.microbatch),
        next_rows_(workers_here_ * part_.microbatch),
        local_G_(workers_here_ * part_.microbatch * D_),
        gathered_G_(part_.ranks * part_.microbatch * D_),
        mean_grad_(D_) {}

  EpochTimes train_epoch(const std::vector<int64_t>& order, Sorter& sorter, Communicator& comm,
                         const EpochHooks& hooks) override {
    const int64_t mb = part_.microbatch, n = part_.ranks, step_rows = n * mb;
    const int64_t here = workers_here_, rows_here = here * mb;
    // AllRanks: gather every rank's per-example rows, step on their mean. OwnRank: this rank's (or
    // with --in_process every worker's) rows for the sorter; the mean gradient all-reduced as for
    // None.
    const GradientNeed need = sorter.needs();
    const bool all_ranks = need == GradientNeed::AllRanks;
    const bool capture = hooks.capture != nullptr;
    const bool per_example = need != GradientNeed::None || capture;
    const float* X = data_.train_x.data();
    const float* y = data_.train_y.data();
    float* theta = theta_.data();
    float* gbar = mean_grad_.data();
    std::vector<const int64_t*> orders(here, order.data());
    if (here > 1)
      for (int64_t w = 0; w < here; ++w) orders[w] = sorter.order_of(first_worker_ + w);
    EpochTimes times;
    PhaseTimer timer(hooks.profile);
    constexpr int64_t kObserveStride = 256;
    std::optional<SorterPipeline> beside;
    start_sorter_beside(beside, sorter, (all_ranks ? step_rows : rows_here) * D_, hooks.profile);
    const bool gather_into_slot = beside && all_ranks && here < n;
    // The orders may still be being drawn (Sorter::draw_beside): each step waits for its rows.
    sorter.wait_for_order(mb);
    step_rows_of(orders, 0, rows_.data());
    for (int64_t k = 0; k < part_.num_batches; ++k) {
      timer.start_step(k);
      float* slot = beside ? beside->slot(k) : nullptr;
      if (k + 1 < part_.num_batches) sorter.wait_for_order((k + 2) * mb);  // the next step's rows
      timer.lap(&times.sorter);
      // The step's examples, copied together as the reference's X = trainset[perm[batch]]; the
      // next step's are fetched from memory while they are computed.
      batch_.gather(X, y, rows_.data(), rows_here);
      if (k + 1 < part_.num_batches) {
        step_rows_of(orders, k + 1, next_rows_.data());
        batch_.fetch_ahead(X, y, next_rows_.data(), rows_here);
      }
      timer.lap(&times.dataset);
      // This worker's (or these workers') per-example rows, and every rank's.
      float* local = beside && !gather_into_slot ? slot : local_G_.data();
      if (per_example) batch_.per_example_gradients(theta, local);
      if (!all_ranks) worker_gradients(theta, gbar);
      timer.lap(&times.forward_backward);
      const float* G = local;
      if ((all_ranks || capture) && here < n) {
        float* gathered = gather_into_slot ? slot : gathered_G_.data();
        comm.all_gather(local, gathered, mb * D_, Device::Cpu);
        G = gathered;
      }
      step_gradient(G, all_ranks, comm, gbar);
      if (capture) std::copy(G, G + step_rows * D_, hooks.capture + k * step_rows * D_);
      timer.lap(&times.communication);
      if (beside) {
        beside->publish(k);
      } else {
        if (all_ranks) sorter.step(G, k);
        if (need == GradientNeed::OwnRank) sorter.step(local, k);
      }
      timer.lap(&times.sorter);
      sgd_.step(theta, gbar);
      timer.lap(&times.sgd);
      if (hooks.observer && ((k + 1) % kObserveStride == 0 || k + 1 == part_.num_batches))
        hooks.observer->on_steps(k + 1, microbatch_loss(X, y, rows_.data(), mb, d_, theta));
      std::swap(rows_, next_rows_);
    }
    timer.finish(&times);
    if (beside) {  // the epoch ends when the sorter has taken its last step
      const auto waited_from = Clock::now();
      beside->finish();
      times.sorter += std::chrono::duration<double>(Clock::now() - waited_from).count();
    }
    return times;
  }

  // With a core to spare (and not --profile, which times the sorter's share of every step), the
  // sorter's walk runs beside the steps (sorter_pipeline.hpp), its rows written straight into the
  // ring's slots of `slot_floats` floats. Otherwise `beside` stays empty and the step loop walks.
  void start_sorter_beside(std::optional<SorterPipeline>& beside, Sorter& sorter,
                           int64_t slot_floats, bool profile) const {
    if (sorter.needs() == GradientNeed::None || threads_ < 2 || profile) return;
    try {
      beside.emplace(sorter, slot_floats, part_.num_batches);
    } catch (const std::system_error&) {  // no thread to be had: the step loop walks, as before
    }
  }

  // The step's gradient: the mean of the gathered rows G (AllRanks), else the workers' gradients
  // combined.
  void step_gradient(const float* G, bool all_ranks, Communicator& comm, float* gbar) {
    if (all_ranks) {
      mean_of_rows(G, part_.ranks * part_.microbatch, D_, gbar);
    } else {
      combine_worker_gradients(comm, gbar);
    }
  }

  std::pair<Evaluation, Evaluation> evaluate() override {
    // The evaluation's copy of the rows, made at the first evaluation: only rank 0 evaluates.
    if (!train_blocks_) {
      train_blocks_.emplace(data_.train_x.data(), part_.used_rows, d_);
      test_blocks_.emplace(data_.test_x.data(), data_.n_test, d_);
    }
    return {khsgd::evaluate(*train_blocks_, data_.train_y.data(), theta_.data(), threads_),
            khsgd::evaluate(*test_blocks_, data_.test_y.data(), theta_.data(), threads_)};
  }

  std::vector<float> parameters() const override { return theta_; }
  std::vector<float> velocity() const override { return sgd_.velocity(); }
  void restore(const std::vector<float>& theta, const std::vector<float>& velocity) override {
    theta_ = theta;
    sgd_.velocity() = velocity;
  }

 private:
  // Step k's rows of the training set, worker after worker: worker w's shard starts at row
  // (first + w) m, and its order picks the step's examples within it.
  void step_rows_of(const std::vector<const int64_t*>& orders, int64_t k, int64_t* out) const {
    const int64_t mb = part_.microbatch, m = part_.shard_rows;
    for (size_t w = 0; w < orders.size(); ++w) {
      const int64_t base = (first_worker_ + static_cast<int64_t>(w)) * m;
      for (int64_t i = 0; i < mb; ++i) out[w * mb + i] = base + orders[w][k * mb + i];
    }
  }

  // Sorters without gathered rows: the workers' mean-loss gradients into gbar. With every worker
  // in this process (--in_process), straight to their mean, the sum taken in rank order as the
  // backends' all-reduce takes it (Microbatch::mean_of_group_gradients); otherwise this rank's
  // own gradient, which combine_worker_gradients() all-reduces.
  void worker_gradients(const float* theta, float* gbar) {
    if (workers_here_ > 1) {
      batch_.mean_of_group_gradients(theta, workers_here_, gbar);
    } else {
      batch_.mean_loss_gradient(theta, gbar);
    }
  }

  // The mean of the ranks' gradients: this rank's, in gbar, summed in rank order across processes
  // and divided by their number. One worker's gradient is the mean already, and so are in-process
  // workers' (worker_gradients()).
  void combine_worker_gradients(Communicator& comm, float* gbar) {
    const int64_t n = part_.ranks;
    if (n == 1 || workers_here_ > 1) return;
    comm.all_reduce_sum(gbar, D_, Device::Cpu);
    for (int64_t j = 0; j < D_; ++j) gbar[j] /= static_cast<float>(n);
  }

  const Dataset& data_;
  Partition part_;
  int64_t d_, D_;
  int64_t first_worker_, workers_here_;
  int threads_;
  std::vector<float> theta_;
  MomentumSGD sgd_;
  Microbatch batch_;
  std::vector<int64_t> rows_, next_rows_;  // this step's and the next step's rows of the data
  std::vector<float> local_G_, gathered_G_, mean_grad_;
  std::optional<FeatureBlocks> train_blocks_, test_blocks_;  // the evaluation's copy of the rows
};

}  // namespace

std::unique_ptr<TrainingEngine> make_cpu_engine(const EngineSetup& setup) {
  return std::make_unique<CpuEngine>(setup);
}

}  // namespace khsgd
