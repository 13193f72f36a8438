// A sorter's walk beside the steps, on a second core.
//
// A pair sorter's decisions shape only the next epoch's order (sorters.hpp: balance() may be
// handed a step at a time or the whole epoch after the steps, the same decisions either way), so
// on a machine with a core to spare the step loop need not wait for them. Step k's gradient rows
// go into slot k of a ring; a helper thread hands the ring's filled slots to sorter.balance() in
// step order, kBatch or more consecutive steps a call (fewer only at the epoch's end and where the
// ring wraps); the step loop reuses a slot only once the helper has taken it, and the epoch ends
// when the helper has taken the last step. Every
// decision is the one the loop would have made itself, bit for bit: the same rows, in the same
// order, by the same code.
//
// balance() reads the sorter's current order and writes its next one; the step loop only reads
// the current one (order_of) while the helper runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

#include "khsgd/sorting/sorters.hpp"

namespace khsgd {

class SorterPipeline {
 public:
  // An epoch of `steps` steps whose gradients are `slot_floats` floats each (the rows the sorter
  // takes, [ranks here, microbatch, D]); starts the helper.
  SorterPipeline(Sorter& sorter, int64_t slot_floats, int64_t steps);
  // Stops the helper, whether or not it took every step (an epoch cut short by an error).
  ~SorterPipeline();
  SorterPipeline(const SorterPipeline&) = delete;
  SorterPipeline& operator=(const SorterPipeline&) = delete;

  // Where step k's rows go (k = 0, 1, ... in order): waits until the helper has taken the step
  // that last used the slot.
  float* slot(int64_t k);
  // Step k's rows are written: the helper may take them.
  void publish(int64_t k);
  // Waits until the helper has taken every step; rethrows what balance() threw (the steps after
  // a failure are taken unread, so the step loop always reaches the epoch's end).
  void finish();

  static constexpr int64_t kSlots = 128;
  // The steps the helper waits for before it walks: taken one at a time, each slot was read the
  // moment after the other core wrote it, and the two cores passed its cache lines and the
  // counter's back and forth every step. Taken 16 at a time, the helper's walk of a CD-GraB epoch
  // went from ~7 to ~6 ms and SBW's two-core epochs were faster in every one of 11 runs side by
  // side (README, Speed). Where the walk keeps up, the epoch's end waits for at most the walk of
  // the last batch, a few microseconds; where it does not (KH-SGD), the wait is what it was.
  static constexpr int64_t kBatch = 16;
  static_assert(kBatch <= kSlots, "the step loop must be able to fill a batch");

 private:
  void run();
  // Waits until done() holds, first spinning, then yielding the core; false when stopped.
  template <class Done>
  bool wait_until(Done&& done) const;

  Sorter& sorter_;
  int64_t slot_floats_, steps_;
  std::vector<float> ring_;            // [kSlots, slot_floats]
  std::atomic<int64_t> published_{0};  // steps written by the step loop
  std::atomic<int64_t> taken_{0};      // steps the helper has handed to balance()
  std::atomic<bool> stop_{false};
  std::exception_ptr failure_;  // what balance() threw: written by the helper before taken_
  std::thread helper_;
};

}  // namespace khsgd
