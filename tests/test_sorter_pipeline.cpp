// The sorter's walk beside the steps (sorter_pipeline.hpp): every step handed over once, in
// order, through a ring smaller than an epoch; the sorter's errors reach the step loop; and the
// registry's sorters decide exactly as when the step loop calls them itself.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "khsgd/base/errors.hpp"
#include "khsgd/engine/sorter_pipeline.hpp"
#include "khsgd/sorting/sorter_registry.hpp"
#include "plain_draws.hpp"
#include "sorter_shape.hpp"

using namespace khsgd;

namespace {

// Records what balance() is handed; slow on its first calls (so that the ring fills and the step
// loop must wait for slots), and throws at a given step when asked to.
class RecordingSorter final : public Sorter {
 public:
  RecordingSorter(int64_t floats, int64_t throw_at) : floats_(floats), throw_at_(throw_at) {}
  GradientNeed needs() const override { return GradientNeed::AllRanks; }
  const std::vector<int64_t>& sort() override { return order_; }
  const int64_t* order_of(int64_t) const override { return order_.data(); }
  void balance(const float* G, int64_t first_step, int64_t steps) override {
    calls.emplace_back(first_step, steps);
    if (first_step <= throw_at_ && throw_at_ < first_step + steps)
      throw UserError("step " + std::to_string(throw_at_) + " refused");
    // Slow before reading the rows: a slot handed back too early is overwritten by then.
    if (calls.size() < 20) std::this_thread::sleep_for(std::chrono::microseconds(200));
    rows.insert(rows.end(), G, G + steps * floats_);
  }
  void save_state(StateWriter&) const override {}
  void load_state(StateReader&) override {}

  std::vector<std::pair<int64_t, int64_t>> calls;
  std::vector<float> rows;

 private:
  int64_t floats_, throw_at_;
  std::vector<int64_t> order_ = {0, 1};
};

float value_of(int64_t step, int64_t i) { return static_cast<float>(step * 1000 + i); }

}  // namespace

TEST(SorterPipeline, HandsEveryStepOverOnceInOrder) {
  const int64_t floats = 6;
  // Fewer steps than a batch; a batch and a step; five times round the ring and three more.
  for (const int64_t steps :
       {int64_t{3}, SorterPipeline::kBatch + 1, 5 * SorterPipeline::kSlots + 3}) {
    SCOPED_TRACE("steps " + std::to_string(steps));
    RecordingSorter sorter(floats, /*throw_at=*/-1);
    {
      SorterPipeline pipeline(sorter, floats, steps);
      for (int64_t k = 0; k < steps; ++k) {
        float* slot = pipeline.slot(k);
        for (int64_t i = 0; i < floats; ++i) slot[i] = value_of(k, i);
        pipeline.publish(k);
      }
      pipeline.finish();
    }
    ASSERT_EQ(static_cast<int64_t>(sorter.rows.size()), steps * floats);
    for (int64_t k = 0; k < steps; ++k)
      for (int64_t i = 0; i < floats; ++i)
        ASSERT_EQ(sorter.rows[k * floats + i], value_of(k, i)) << "step " << k << ", float " << i;
    int64_t next = 0;
    for (const auto& [first, count] : sorter.calls) {
      EXPECT_EQ(first, next);
      EXPECT_LE(first % SorterPipeline::kSlots + count,
                SorterPipeline::kSlots);  // one run of slots
      // A batch at least, but where the ring wraps or the epoch ends.
      if (first % SorterPipeline::kSlots + count < SorterPipeline::kSlots && first + count < steps)
        EXPECT_GE(count, SorterPipeline::kBatch) << "call at step " << first;
      else
        EXPECT_GE(count, 1);
      next = first + count;
    }
    EXPECT_EQ(next, steps);
  }
}

// The sorter's error reaches the step loop at the epoch's end, after every step (so that ranks
// that fail alike stop at the same point), and no call is made after it.
TEST(SorterPipeline, TheSortersErrorReachesTheStepLoopAtTheEpochsEnd) {
  const int64_t floats = 3, steps = 3 * SorterPipeline::kSlots;
  for (const int64_t throw_at : {int64_t{0}, int64_t{200}, steps - 1}) {
    RecordingSorter sorter(floats, throw_at);
    std::string message;
    int64_t published = 0;
    try {
      SorterPipeline pipeline(sorter, floats, steps);
      for (int64_t k = 0; k < steps; ++k) {
        float* slot = pipeline.slot(k);
        std::fill(slot, slot + floats, 1.0f);
        pipeline.publish(k);
        ++published;
      }
      pipeline.finish();
    } catch (const UserError& e) { message = e.what(); }
    EXPECT_EQ(message, "step " + std::to_string(throw_at) + " refused");
    EXPECT_EQ(published, steps);
    ASSERT_FALSE(sorter.calls.empty());
    const auto [first, count] = sorter.calls.back();
    EXPECT_TRUE(first <= throw_at && throw_at < first + count) << "a call after the failure";
  }
  // The step loop's own error, mid-epoch: the pipeline stops its helper and is gone.
  RecordingSorter sorter(floats, -1);
  EXPECT_THROW(
      {
        SorterPipeline pipeline(sorter, floats, steps);
        pipeline.publish(0);
        throw std::runtime_error("the all-gather failed");
      },
      std::runtime_error);
}

// Every sorter that takes per-example gradients, fed the same epochs of gradients by the step loop
// itself and through the pipeline: the same next orders and the same checkpoint state, bit for bit.
TEST(SorterPipeline, SortersDecideAsInTheStepLoop) {
  int tested = 0;
  for (const bool every_rank_here : {false, true}) {
    SCOPED_TRACE(every_rank_here ? "every rank here (--in_process)" : "one rank here");
    SorterShape shape =
        khsgd_test::shape_of(/*ranks=*/2, /*m=*/96, /*mb=*/4, /*D=*/5, /*epochs=*/3);
    shape.every_rank_here = every_rank_here;
    const int64_t steps = shape.shard_rows / shape.microbatch;
    uint32_t state = 2024;
    auto next = [&state] {
      state = state * 1664525u + 1013904223u;
      return static_cast<float>(state >> 8) / 16777216.0f * 2.0f - 1.0f;
    };
    for (const SorterInfo& info : sorter_registry()) {
      if (info.needs == GradientNeed::None) continue;
      SCOPED_TRACE(info.name);
      // AllRanks (or every rank here): every rank's rows; OwnRank: this rank's.
      const int64_t floats =
          (info.needs == GradientNeed::AllRanks || every_rank_here ? shape.ranks : 1) *
          shape.microbatch * shape.D;
      khsgd_test::PlainDraws ops_a(0.3f), ops_b(0.3f);
      auto in_loop = make_sorter(info.name, shape, ops_a);
      auto beside = make_sorter(info.name, shape, ops_b);
      for (int64_t epoch = 0; epoch < shape.epochs; ++epoch) {
        in_loop->sort();
        beside->sort();
        SorterPipeline pipeline(*beside, floats, steps);
        for (int64_t k = 0; k < steps; ++k) {
          float* slot = pipeline.slot(k);
          for (int64_t i = 0; i < floats; ++i) slot[i] = next();
          in_loop->step(slot, k);
          pipeline.publish(k);
        }
        pipeline.finish();
      }
      in_loop->sort();
      beside->sort();
      for (int64_t r = 0; r < shape.ranks; ++r)
        EXPECT_EQ(std::memcmp(in_loop->order_of(r), beside->order_of(r),
                              shape.shard_rows * sizeof(int64_t)),
                  0)
            << "rank " << r;
      StateWriter a, b;
      in_loop->save_state(a);
      beside->save_state(b);
      EXPECT_EQ(a.data(), b.data());
      ++tested;
    }
  }
  EXPECT_GE(tested, 10);  // CD-GraB, SBW, KH-SGD, GraB, I-B, each way
}
