#include "khsgd/sorters.hpp"

#include <cmath>
#include <numeric>
#include <utility>

#include "khsgd/errors.hpp"
#include "khsgd/pair_rules.hpp"

namespace khsgd {

namespace {

// D-RR (ALGORITHM.md §4.1): every epoch a fresh randperm(m) from the training device's generator. All ranks share the
// seed, so all draw the same permutation of their own shards.
class RandomReshuffle final : public Sorter {
 public:
  RandomReshuffle(const SorterShape& shape, DeviceOps& ops) : shape_(shape), ops_(ops) {}
  std::string name() const override { return "D-RR"; }
  bool balances_pairs() const override { return false; }
  const std::vector<int64_t>& sort() override {
    order_ = ops_.randperm(shape_.shard_rows);
    return order_;
  }
  // The seed is the same on every rank, so every rank draws the same permutation of its shard.
  const int64_t* order_of(int64_t) const override { return order_.data(); }
  void step(const float*, int64_t) override {}
  void balance_epoch(const float*, int64_t) override {}
  // Each epoch's permutation comes from the generator, whose state the checkpoint holds.
  void save_state(StateWriter&) const override {}
  void load_state(StateReader&) override {}

 private:
  SorterShape shape_;
  DeviceOps& ops_;
  std::vector<int64_t> order_;
};

// The pair-balancing family (ALGORITHM.md §4.2): state, bookkeeping and the loop over pairs and ranks; the
// subclasses supply the sign rule and what it needs.
class PairBalancer : public Sorter {
 public:
  explicit PairBalancer(const SorterShape& shape)
      : shape_(shape),
        orders_(shape.ranks * shape.shard_rows),
        next_orders_(shape.ranks * shape.shard_rows),
        sum_(shape.D, 0.0f),
        delta_(shape.D) {
    if (shape.shard_rows % 2 != 0 || shape.microbatch % 2 != 0)
      throw UserError("pair balancing needs an even number of examples per rank and step");
    // Both order matrices start as the identity, so epoch 1 runs in natural order.
    for (int64_t j = 0; j < shape.ranks; ++j) {
      std::iota(&orders_[j * shape.shard_rows], &orders_[(j + 1) * shape.shard_rows], 0);
      std::iota(&next_orders_[j * shape.shard_rows], &next_orders_[(j + 1) * shape.shard_rows], 0);
    }
  }

  bool balances_pairs() const override { return true; }

  const std::vector<int64_t>& sort() override {
    start_epoch();
    std::swap(orders_, next_orders_);
    std::fill(sum_.begin(), sum_.end(), 0.0f);
    left_ = 0;
    right_ = shape_.shard_rows - 1;
    ++sort_calls_;
    const int64_t m = shape_.shard_rows;
    local_order_.assign(&orders_[shape_.rank * m], &orders_[(shape_.rank + 1) * m]);
    return local_order_;
  }

  const int64_t* order_of(int64_t rank) const override { return &orders_[rank * shape_.shard_rows]; }

  void step(const float* G, int64_t k) override {
    const int64_t n = shape_.ranks, m = shape_.shard_rows, mb = shape_.microbatch, D = shape_.D;
    for (int64_t p = 0; p < mb / 2; ++p) {
      for (int64_t j = 0; j < n; ++j) {
        const float* first = G + (j * mb + 2 * p) * D;
        const float* second = first + D;
        double inner = 0.0;
        for (int64_t c = 0; c < D; ++c) {
          delta_[c] = second[c] - first[c];
          inner += static_cast<double>(sum_[c]) * delta_[c];
        }
        const int64_t a = orders_[j * m + k * mb + 2 * p];
        const int64_t b = orders_[j * m + k * mb + 2 * p + 1];
        if (adds(delta_.data(), static_cast<float>(inner))) {
          next_orders_[j * m + left_] = a;
          next_orders_[j * m + right_] = b;
          for (int64_t c = 0; c < D; ++c) sum_[c] += delta_[c];
        } else {
          next_orders_[j * m + right_] = a;
          next_orders_[j * m + left_] = b;
          for (int64_t c = 0; c < D; ++c) sum_[c] -= delta_[c];
        }
      }
      ++left_;
      --right_;
    }
  }

  void balance_epoch(const float* G_all, int64_t num_batches) override {
    const int64_t stride = shape_.ranks * shape_.microbatch * shape_.D;
    for (int64_t k = 0; k < num_batches; ++k) step(G_all + k * stride, k);
  }

  // Between epochs the next sort() makes next_orders the order; the running sum, the pointers
  // and KH-SGD's tau and counter are reset there, so they need no saving.
  void save_state(StateWriter& out) const override {
    out.i64(sort_calls_);
    out.indices(next_orders_);
    save_extra(out);
  }
  void load_state(StateReader& in) override {
    sort_calls_ = in.i64();
    if (sort_calls_ < 0) in.corrupt("negative epoch count");
    std::vector<int64_t> next = in.indices();
    in.expect_size(next.size(), next_orders_.size(), "the order matrix");
    next_orders_ = std::move(next);
    load_extra(in);
  }

 protected:
  // Called by sort() before the order matrices swap; sort_calls() earlier calls have happened.
  virtual void start_epoch() {}
  // The sign of one decision: true = "+" (a to the front, s += delta).
  virtual bool adds(const float* delta, float inner) = 0;
  virtual void save_extra(StateWriter&) const {}
  virtual void load_extra(StateReader&) {}
  int64_t sort_calls() const { return sort_calls_; }

  SorterShape shape_;

 private:
  std::vector<int64_t> orders_, next_orders_;  // n x m
  std::vector<float> sum_;                     // s, the running signed sum of differences
  std::vector<float> delta_;
  std::vector<int64_t> local_order_;
  int64_t left_ = 0, right_ = 0;
  int64_t sort_calls_ = 0;
};

// CD-GraB (ALGORITHM.md §4.3): greedy signs.
class CDGraB final : public PairBalancer {
 public:
  using PairBalancer::PairBalancer;
  std::string name() const override { return "CD-GraB"; }

 protected:
  bool adds(const float*, float inner) override { return cdgrab_adds(inner); }
};

// Self-balancing walk (Alweiss et al. 2021; ALGORITHM.md §4.4) with the reference's constants.
class SelfBalancingWalk final : public PairBalancer {
 public:
  SelfBalancingWalk(const SorterShape& shape, DeviceOps& ops) : PairBalancer(shape) {
    const int64_t count = shape.shard_rows * shape.ranks * shape.epochs / 2;
    if (count > (int64_t{1} << 30))
      throw UserError("SBW draws m*n*epochs/2 = " + std::to_string(count) +
                      " thresholds up front (more than 4 GiB); use fewer --epochs");
    const double b_max = std::sqrt(20875.0), delta = 0.5;
    const double scale = b_max * 30 *
                         std::log(static_cast<double>(shape.shard_rows * shape.epochs * shape.D) /
                                  delta / 2);
    // multipliers = scale * (1 - 2 u), in float32 like the reference's tensor ops.
    thresholds_ = ops.uniform(count, 0.0, 1.0);
    const float scale_f = static_cast<float>(scale);
    for (float& t : thresholds_) t = scale_f * (1.0f - 2.0f * t);
  }
  std::string name() const override { return "SBW"; }

 protected:
  // The decision counter runs across the whole run, never reset.
  bool adds(const float*, float inner) override { return sbw_adds(inner, thresholds_[t_++]); }
  void save_extra(StateWriter& out) const override { out.i64(t_); }
  void load_extra(StateReader& in) override {
    t_ = in.i64();
    if (t_ < 0 || t_ > static_cast<int64_t>(thresholds_.size())) in.corrupt("SBW's counter is out of range");
  }

 private:
  std::vector<float> thresholds_;
  int64_t t_ = 0;
};

// Kernel halving (Low-Rank Thinning; ALGORITHM.md §4.5): one decision per (pair, rank),
// T = n m / 2 per epoch (§6).
class KernelHalving final : public PairBalancer {
 public:
  KernelHalving(const SorterShape& shape, DeviceOps& ops)
      : PairBalancer(shape), ops_(ops), T_(shape.ranks * shape.shard_rows / 2) {
    const double delta = 0.5;
    const double constant = (4 / delta) * (std::log(static_cast<double>(shape.epochs)) + 1) *
                            (std::log(static_cast<double>(T_)) + 1);
    log_penalty_ = ops.log_of_multiples(constant, T_);
    uniforms_ = ops.uniform(T_, -1.0, 1.0);
  }
  std::string name() const override { return "KH-SGD"; }

 protected:
  void start_epoch() override {
    const int64_t earlier = sort_calls();
    if (earlier == 0) return;
    tau_ = 0.0;
    t_ = 0;
    uniforms_ = ops_.uniform(T_, -1.0, 1.0);
    // log_penalty += ln(1 + 1/c) in float32: epoch e carries + ln e, rounded as the reference.
    const float increment = static_cast<float>(std::log(1.0 + 1.0 / static_cast<double>(earlier)));
    for (float& l : log_penalty_) l = l + increment;
  }

  bool adds(const float* delta, float inner) override {
    double bsq = 0.0;
    for (int64_t c = 0; c < shape_.D; ++c) bsq += delta[c] * delta[c];
    const bool plus = khsgd_adds(static_cast<float>(bsq), log_penalty_[t_], uniforms_[t_], inner,
                                 &tau_);
    ++t_;
    return plus;
  }
  // The penalties carry every earlier epoch's + ln(1 + 1/c), rounded step by step in float32.
  void save_extra(StateWriter& out) const override { out.floats(log_penalty_); }
  void load_extra(StateReader& in) override {
    std::vector<float> penalties = in.floats();
    in.expect_size(penalties.size(), log_penalty_.size(), "KH-SGD's log-penalty table");
    log_penalty_ = std::move(penalties);
  }

 private:
  DeviceOps& ops_;
  int64_t T_;
  std::vector<float> log_penalty_;  // logpen[t] = ln((4/delta)(ln E + 1)(1 + ln T) (t + 1))
  std::vector<float> uniforms_;     // rad[t] ~ U(-1, 1), redrawn each epoch from the second on
  double tau_ = 0.0;                // "two sigma squared", 0 at each epoch start
  int64_t t_ = 0;
};

}  // namespace

const int64_t* Sorter::order_of(int64_t) const {
  throw UserError("the " + name() + " sorter on " + device_name(device()) +
                  " cannot tell every rank's order; --in_process runs on the CPU");
}

std::unique_ptr<Sorter> make_sorter(const std::string& name, const SorterShape& shape,
                                    DeviceOps& ops) {
  if (name == "D-RR") return std::make_unique<RandomReshuffle>(shape, ops);
  if (shape.device == Device::Cuda) {
#ifdef KHSGD_WITH_CUDA
    return make_cuda_pair_sorter(name, shape, ops);
#else
    throw UserError("--device cuda: this build has no CUDA support");
#endif
  }
  if (name == "CD-GraB") return std::make_unique<CDGraB>(shape);
  if (name == "SBW") return std::make_unique<SelfBalancingWalk>(shape, ops);
  if (name == "KH-SGD") return std::make_unique<KernelHalving>(shape, ops);
  throw UserError("unknown sorter '" + name + "'");
}

}  // namespace khsgd
