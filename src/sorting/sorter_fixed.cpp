// fixed (ALGORITHM.md §4.9): the natural order 0 .. m-1 every epoch, as grab-sampler's
// FixedOrdering sorter defines it when given no order.
#include <numeric>

#include "khsgd/sorting/sorter_registry.hpp"

namespace khsgd {

namespace {

class FixedOrder final : public Sorter {
 public:
  explicit FixedOrder(const SorterShape& shape) : order_(shape.shard_rows) {
    std::iota(order_.begin(), order_.end(), 0);
  }

  GradientNeed needs() const override { return GradientNeed::None; }
  const std::vector<int64_t>& sort() override { return order_; }
  const int64_t* order_of(int64_t) const override { return order_.data(); }
  void balance(const float*, int64_t, int64_t) override {}
  // Nothing changes between epochs and nothing is drawn: nothing to save.
  void save_state(StateWriter&) const override {}
  void load_state(StateReader&) override {}

 private:
  std::vector<int64_t> order_;
};

std::unique_ptr<Sorter> make_fixed_order(const SorterShape& shape, DeviceOps&) {
  return std::make_unique<FixedOrder>(shape);
}

}  // namespace

SorterInfo fixed_order_sorter() {
  SorterInfo info;
  info.name = "fixed";
  info.description = "the natural order of every rank's shard, every epoch (no shuffling)";
  info.needs = GradientNeed::None;
  info.host = &make_fixed_order;
  info.cuda = &make_fixed_order;
  return info;
}

}  // namespace khsgd
