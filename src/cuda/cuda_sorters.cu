// The pair-balancing sorters with their state on the GPU, beside their CPU twins in sorters.cpp:
// same tables, same bookkeeping in sort(), the decisions in pair_balance.cu.
#include <cmath>
#include <numeric>

#include "cuda_util.cuh"
#include "kernels.cuh"
#include "khsgd/errors.hpp"
#include "khsgd/sorters.hpp"

namespace khsgd {

namespace {

using cuda::DeviceBuffer;
using cuda::PairRule;
using cuda::PairState;

class CudaPairSorter final : public Sorter {
 public:
  CudaPairSorter(PairRule rule, std::string name, const SorterShape& shape, DeviceOps& ops)
      : rule_(rule), name_(std::move(name)), shape_(shape), ops_(ops) {
    const int64_t n = shape.ranks, m = shape.shard_rows;
    if (m % 2 != 0 || shape.microbatch % 2 != 0)
      throw UserError("pair balancing needs an even number of examples per rank and step");
    // Both order matrices start as the identity: epoch 1 runs in natural order.
    std::vector<int64_t> identity(n * m);
    for (int64_t j = 0; j < n; ++j) std::iota(&identity[j * m], &identity[(j + 1) * m], 0);
    orders_.upload(identity);
    next_orders_.upload(identity);
    sum_.resize(shape.D);
    sum_.zero();
    state_.resize(1);
    reset_state(/*keep_decision=*/false);
    if (rule == PairRule::KHSGD) {
      T_ = n * m / 2;
      const double delta = 0.5;
      const double constant = (4 / delta) * (std::log(static_cast<double>(shape.epochs)) + 1) *
                              (std::log(static_cast<double>(T_)) + 1);
      log_penalty_.upload(ops.log_of_multiples(constant, T_));
      uniforms_.upload(ops.uniform(T_, -1.0, 1.0));
    } else if (rule == PairRule::SBW) {
      const int64_t count = m * n * shape.epochs / 2;
      if (count > (int64_t{1} << 30))
        throw UserError("SBW draws m*n*epochs/2 = " + std::to_string(count) +
                        " thresholds up front (more than 4 GiB); use fewer --epochs");
      const double b_max = std::sqrt(20875.0);
      const double scale =
          b_max * 30 * std::log(static_cast<double>(m * shape.epochs * shape.D) / delta_ / 2);
      std::vector<float> thresholds = ops.uniform(count, 0.0, 1.0);
      const float scale_f = static_cast<float>(scale);
      for (float& t : thresholds) t = scale_f * (1.0f - 2.0f * t);
      thresholds_.upload(thresholds);
    }
  }

  std::string name() const override { return name_; }
  bool balances_pairs() const override { return true; }
  Device device() const override { return Device::Cuda; }

  const std::vector<int64_t>& sort() override {
    if (rule_ == PairRule::KHSGD && sort_calls_ > 0) {
      uniforms_.upload(ops_.uniform(T_, -1.0, 1.0));
      const float increment = static_cast<float>(std::log(1.0 + 1.0 / static_cast<double>(sort_calls_)));
      cuda::launch_add_scalar(log_penalty_.data(), T_, increment, nullptr);
    }
    orders_.swap(next_orders_);
    sum_.zero();
    reset_state(/*keep_decision=*/rule_ == PairRule::SBW);
    ++sort_calls_;
    const int64_t m = shape_.shard_rows;
    local_order_ = orders_.download(m, shape_.rank * m);
    return local_order_;
  }

  void step(const float* G, int64_t k) override { run(G, k, 1); }

  void balance_epoch(const float* G_all, int64_t num_batches) override { run(G_all, 0, num_batches); }

  // As the CPU twin: the next epoch's order matrix, the epoch count, SBW's decision counter and
  // KH-SGD's log-penalties (the rest is reset by sort()).
  void save_state(StateWriter& out) const override {
    out.i64(sort_calls_);
    out.indices(next_orders_.download(next_orders_.size()));
    if (rule_ == PairRule::SBW) out.i64(state_.download(1)[0].decision);
    if (rule_ == PairRule::KHSGD) out.floats(log_penalty_.download(log_penalty_.size()));
  }
  void load_state(StateReader& in) override {
    sort_calls_ = in.i64();
    if (sort_calls_ < 0) in.corrupt("negative epoch count");
    const std::vector<int64_t> next = in.indices();
    in.expect_size(next.size(), next_orders_.size(), "the order matrix");
    next_orders_.upload(next.data(), next.size());
    if (rule_ == PairRule::SBW) {
      PairState state = state_.download(1)[0];
      state.decision = in.i64();
      if (state.decision < 0 || static_cast<size_t>(state.decision) > thresholds_.size())
        in.corrupt("SBW's counter is out of range");
      state_.upload(&state, 1);
    }
    if (rule_ == PairRule::KHSGD) {
      const std::vector<float> penalties = in.floats();
      in.expect_size(penalties.size(), log_penalty_.size(), "KH-SGD's log-penalty table");
      log_penalty_.upload(penalties.data(), penalties.size());
    }
  }

 private:
  void run(const float* G, int64_t first_step, int64_t steps) {
    cuda::PairBalanceArgs args;
    args.rule = rule_;
    args.gradients = G;
    args.first_step = first_step;
    args.steps = steps;
    args.ranks = shape_.ranks;
    args.shard_rows = shape_.shard_rows;
    args.microbatch = shape_.microbatch;
    args.D = shape_.D;
    args.orders = orders_.data();
    args.next_orders = next_orders_.data();
    args.sum = sum_.data();
    args.state = state_.data();
    args.log_penalty = log_penalty_.data();
    args.uniforms = uniforms_.data();
    args.thresholds = thresholds_.data();
    cuda::launch_pair_balance(args, nullptr);
  }

  void reset_state(bool keep_decision) {
    PairState state{0.0, 0, 0, shape_.shard_rows - 1};
    if (keep_decision) state.decision = state_.download(1)[0].decision;
    state_.upload(&state, 1);
  }

  PairRule rule_;
  std::string name_;
  SorterShape shape_;
  DeviceOps& ops_;
  const double delta_ = 0.5;
  int64_t T_ = 0;
  int64_t sort_calls_ = 0;
  DeviceBuffer<int64_t> orders_, next_orders_;
  DeviceBuffer<float> sum_;
  DeviceBuffer<PairState> state_;
  DeviceBuffer<float> log_penalty_, uniforms_, thresholds_;
  std::vector<int64_t> local_order_;
};

}  // namespace

std::unique_ptr<Sorter> make_cuda_pair_sorter(const std::string& name, const SorterShape& shape,
                                              DeviceOps& ops) {
  if (name == "CD-GraB") return std::make_unique<CudaPairSorter>(PairRule::CDGraB, name, shape, ops);
  if (name == "SBW") return std::make_unique<CudaPairSorter>(PairRule::SBW, name, shape, ops);
  if (name == "KH-SGD") return std::make_unique<CudaPairSorter>(PairRule::KHSGD, name, shape, ops);
  throw UserError("unknown sorter '" + name + "'");
}

}  // namespace khsgd
