// GraB, mean balancing (Lu, Guo, De Sa; NeurIPS 2022; ALGORITHM.md §4.6): the reference's GraB
// class (microsoft/khsgd algo.py) on the host, and I-B (§4.7), the reference's
// Independent_Balance (d_algo.py): one GraB per rank on its own gradients. CPU only: the walk is
// one decision per example with a dependent running sum, the GPU engine has no twin of it.
#include <algorithm>
#include <utility>

#include "khsgd/sorting/sorter_registry.hpp"

namespace khsgd {

namespace {

// Herding of each example's gradient minus the previous epoch's mean: with the running signed sum
// s, an example goes to the front of the next epoch's order (s += g - mean) when
// <s, g - mean> <= 0, else to the back (s -= g - mean). Each rank's order has its own two
// pointers; `groups` walks share nothing: one over all ranks' examples, or one per rank.
class MeanBalancer final : public Sorter {
 public:
  // per_rank: every rank its own walk, mean and sum, fed only its own gradients; else one walk
  // over the gathered gradients of all ranks.
  MeanBalancer(const SorterShape& shape, bool per_rank)
      : shape_(shape),
        per_rank_(per_rank),
        groups_(per_rank ? shape.ranks : 1),
        orders_(shape.ranks * shape.shard_rows),
        next_orders_(orders_.size()),
        mean_(groups_ * shape.D, 0.0f),
        next_total_(mean_.size(), 0.0f),
        sum_(mean_.size(), 0.0f),
        left_(shape.ranks, 0),
        right_(shape.ranks, 0),
        diff_(shape.D) {
    const int64_t m = shape.shard_rows;
    for (int64_t j = 0; j < shape.ranks; ++j) {
      for (int64_t i = 0; i < m; ++i) orders_[j * m + i] = i;
    }
    next_orders_ = orders_;  // epoch 1 runs in natural order
    // Whose gradients balance() is handed: all ranks' (gathered, or --in_process), or this one's.
    const bool all_here = !per_rank || shape.every_rank_here;
    first_rank_ = all_here ? 0 : shape.rank;
    ranks_here_ = all_here ? shape.ranks : 1;
  }

  GradientNeed needs() const override {
    return per_rank_ ? GradientNeed::OwnRank : GradientNeed::AllRanks;
  }

  // The reference's sort(): the mean of the epoch just walked (its float32 sum divided by the
  // count in float32) becomes the one subtracted in the next.
  const std::vector<int64_t>& sort() override {
    const float count =
        static_cast<float>(per_rank_ ? shape_.shard_rows : shape_.ranks * shape_.shard_rows);
    for (size_t c = 0; c < mean_.size(); ++c) mean_[c] = next_total_[c] / count;
    std::fill(next_total_.begin(), next_total_.end(), 0.0f);
    std::fill(sum_.begin(), sum_.end(), 0.0f);
    std::fill(left_.begin(), left_.end(), 0);
    std::fill(right_.begin(), right_.end(), shape_.shard_rows - 1);
    std::swap(orders_, next_orders_);  // next_orders_ is rewritten in full by the epoch's walk
    const int64_t m = shape_.shard_rows;
    local_order_.assign(&orders_[shape_.rank * m], &orders_[(shape_.rank + 1) * m]);
    return local_order_;
  }

  const int64_t* order_of(int64_t rank) const override {
    return &orders_[rank * shape_.shard_rows];
  }

  // Step by step, example by example (the microbatch's positions outer, the ranks inner, as
  // CD-GraB walks its pairs), as the reference's step() feeds single_step().
  void balance(const float* G, int64_t first_step, int64_t steps) override {
    const int64_t mb = shape_.microbatch, D = shape_.D;
    for (int64_t s = 0; s < steps; ++s) {
      const float* step_rows = G + s * ranks_here_ * mb * D;
      for (int64_t i = 0; i < mb; ++i) {
        for (int64_t h = 0; h < ranks_here_; ++h)
          place(first_rank_ + h, (first_step + s) * mb + i, step_rows + (h * mb + i) * D);
      }
    }
  }

  // Between epochs the next sort() needs the walked order and the epoch's gradient sum; the
  // running sums and pointers restart there.
  void save_state(StateWriter& out) const override {
    out.indices(next_orders_);
    out.floats(next_total_);
  }
  void load_state(StateReader& in) override {
    std::vector<int64_t> next = in.indices();
    in.expect_size(next.size(), next_orders_.size(), "GraB's order matrix");
    in.expect_permutations(next, shape_.shard_rows, "GraB's order matrix");
    std::vector<float> total = in.floats();
    in.expect_size(total.size(), next_total_.size(), "GraB's gradient sums");
    next_orders_ = std::move(next);
    next_total_ = std::move(total);
  }

 private:
  // Example at position `at` of rank j's order, gradient g: the reference's single_step(). The
  // inner product is summed in double and rounded once to float32, as the pair walk does
  // (pair_walk.hpp): float32 tensors' dot products agree with it to within an ulp.
  void place(int64_t j, int64_t at, const float* g) {
    const int64_t D = shape_.D, group = per_rank_ ? j : 0;
    float* total = &next_total_[group * D];
    const float* mean = &mean_[group * D];
    float* sum = &sum_[group * D];
    double inner = 0.0;
    for (int64_t c = 0; c < D; ++c) {
      total[c] += g[c];
      diff_[c] = g[c] - mean[c];
      inner += static_cast<double>(sum[c]) * diff_[c];
    }
    const bool front = static_cast<float>(inner) <= 0.0f;
    const int64_t m = shape_.shard_rows;
    next_orders_[j * m + (front ? left_[j]++ : right_[j]--)] = orders_[j * m + at];
    for (int64_t c = 0; c < D; ++c) sum[c] = front ? sum[c] + diff_[c] : sum[c] - diff_[c];
  }

  SorterShape shape_;
  bool per_rank_;
  int64_t groups_;
  int64_t first_rank_ = 0, ranks_here_ = 1;
  std::vector<int64_t> orders_, next_orders_;  // this epoch's and the next one's, n x m
  std::vector<float> mean_;                    // [groups, D]: the previous epoch's mean gradient
  std::vector<float> next_total_;              // [groups, D]: this epoch's gradients summed
  std::vector<float> sum_;                     // [groups, D]: s
  std::vector<int64_t> left_, right_;          // per rank: the next free slots
  std::vector<float> diff_;
  std::vector<int64_t> local_order_;
};

std::unique_ptr<Sorter> make_grab(const SorterShape& shape, DeviceOps&) {
  return std::make_unique<MeanBalancer>(shape, /*per_rank=*/false);
}

std::unique_ptr<Sorter> make_independent_balance(const SorterShape& shape, DeviceOps&) {
  return std::make_unique<MeanBalancer>(shape, /*per_rank=*/true);
}

}  // namespace

SorterInfo grab_sorter() {
  SorterInfo info;
  info.name = "GraB";
  info.description =
      "herding each gradient minus the previous epoch's mean (Lu et al., NeurIPS 2022); all "
      "ranks' gradients gathered into one walk";
  info.needs = GradientNeed::AllRanks;
  info.host = &make_grab;
  info.time_labels = kGatherBufferFirst;  // it gathers, as the pair sorters do
  return info;
}

SorterInfo independent_balance_sorter() {
  SorterInfo info;
  info.name = "I-B";
  info.description =
      "GraB on each rank's own gradients, independently (Independent_Balance, CD-GraB's "
      "baseline); nothing gathered";
  info.needs = GradientNeed::OwnRank;
  info.host = &make_independent_balance;
  // Its update is D-RR's (the mean gradient all-reduced after forward-backward).
  info.time_labels = kReduceAfterBackward;
  return info;
}

}  // namespace khsgd
