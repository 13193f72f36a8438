// SO, shuffle once (ALGORITHM.md §4.8): one random permutation at the start, reused every epoch,
// as grab-sampler's ShuffleOnce sorter defines it (its random_first_epoch default).
#include "khsgd/sorting/sorter_registry.hpp"

namespace khsgd {

namespace {

class ShuffleOnce final : public Sorter {
 public:
  // The permutation comes from the training device's generator at construction, where the other
  // sorters draw their tables (§5): the seed is the same on every rank, so every rank draws the
  // same permutation of its own shard, as D-RR does each epoch.
  ShuffleOnce(const SorterShape& shape, DeviceOps& ops) : order_(ops.randperm(shape.shard_rows)) {}

  GradientNeed needs() const override { return GradientNeed::None; }
  const std::vector<int64_t>& sort() override { return order_; }
  const int64_t* order_of(int64_t) const override { return order_.data(); }
  void balance(const float*, int64_t, int64_t) override {}

  // A resumed run rebuilds the sorter from the same seed and so draws the same permutation; the
  // checkpoint holds it anyway, so that the resumed run keeps the order it started with even if
  // the draws before it were to change.
  void save_state(StateWriter& out) const override { out.indices(order_); }
  void load_state(StateReader& in) override {
    std::vector<int64_t> order = in.indices();
    in.expect_size(order.size(), order_.size(), "SO's permutation");
    in.expect_permutations(order, static_cast<int64_t>(order_.size()), "SO's permutation");
    order_ = std::move(order);
  }

 private:
  std::vector<int64_t> order_;
};

std::unique_ptr<Sorter> make_shuffle_once(const SorterShape& shape, DeviceOps& ops) {
  return std::make_unique<ShuffleOnce>(shape, ops);
}

}  // namespace

SorterInfo shuffle_once_sorter() {
  SorterInfo info;
  info.name = "SO";
  info.description = "shuffle once: one random permutation drawn at the start, every epoch";
  info.needs = GradientNeed::None;
  // Host state only; under --device cuda `ops` draws from the CUDA generator, as D-RR's does.
  info.host = &make_shuffle_once;
  info.cuda = &make_shuffle_once;
  return info;
}

}  // namespace khsgd
