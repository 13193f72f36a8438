#include "khsgd/engine/sorter_pipeline.hpp"

#include <algorithm>

#include "khsgd/base/cores.hpp"

namespace khsgd {

SorterPipeline::SorterPipeline(Sorter& sorter, int64_t slot_floats, int64_t steps)
    : sorter_(sorter),
      slot_floats_(slot_floats),
      steps_(steps),
      ring_(static_cast<size_t>(kSlots * slot_floats)) {
  helper_ = std::thread([this] { run(); });
}

SorterPipeline::~SorterPipeline() {
  stop_.store(true, std::memory_order_release);
  helper_.join();
}

template <class Done>
bool SorterPipeline::wait_until(Done&& done) const {
  // A step takes about a microsecond: spin through a few of them before giving the core away
  // (a yield costs about as much as a step), then yield, and after ~16 000 yields sleep 50 us
  // between looks: only a long wait gets there (the steps held up by a slow peer's all-gather,
  // the helper by a long walk).
  bool stopped = false;
  wait_spinning(
      [&] {
        if (done()) return true;
        stopped = stop_.load(std::memory_order_acquire);
        return stopped;
      },
      /*spins=*/4096, /*yields=*/16384);
  return !stopped;
}

void SorterPipeline::run() {
  for (int64_t first = 0; first < steps_;) {
    const int64_t batch_end = std::min(first + kBatch, steps_);
    if (!wait_until([&] { return published_.load(std::memory_order_acquire) >= batch_end; }))
      return;
    // The ready steps up to the ring's end, in one call: their slots are consecutive.
    const int64_t ready = published_.load(std::memory_order_acquire) - first;
    const int64_t count = std::min(ready, kSlots - first % kSlots);
    // After a failure the steps are still taken, unread: the step loop runs to the epoch's end,
    // as every rank's does, and finish() reports the failure there (ranks that fail alike then
    // fail at the same point, not at whichever step each noticed it).
    if (!failure_) {
      try {
        sorter_.balance(ring_.data() + first % kSlots * slot_floats_, first, count);
      } catch (...) { failure_ = std::current_exception(); }
    }
    first += count;
    taken_.store(first, std::memory_order_release);
  }
}

float* SorterPipeline::slot(int64_t k) {
  wait_until([&] { return taken_.load(std::memory_order_acquire) > k - kSlots; });
  return ring_.data() + k % kSlots * slot_floats_;
}

void SorterPipeline::publish(int64_t k) { published_.store(k + 1, std::memory_order_release); }

void SorterPipeline::finish() {
  wait_until([&] { return taken_.load(std::memory_order_acquire) >= steps_; });
  // taken_ (acquire) == steps_: the helper wrote failure_ before its last store.
  if (failure_) std::rethrow_exception(failure_);
}

}  // namespace khsgd
