// What an epoch reports to the rest of a run: its times, its evaluations and its progress. A header
// of its own, so that the results files and the progress display (results.hpp, progress.hpp) need
// neither the engines, the communicator nor the sorters.
#pragma once

#include <cstdint>

namespace khsgd {

// Seconds an epoch spent per category, the reference's EventTimer names. Without --profile the
// CPU engine times every 64th step and scales up, and the CUDA engine times whole kernels (the
// fused epoch kernel counts as forward-backward): `estimated` says so.
struct EpochTimes {
  double sorter = 0.0;
  double communication = 0.0;
  double dataset = 0.0;
  double forward_backward = 0.0;
  double sgd = 0.0;
  bool estimated = false;
};

// Told about the epoch's progress every few hundred steps (rank 0's progress display).
class StepObserver {
 public:
  virtual ~StepObserver() = default;
  // steps_done of this epoch; the mean loss of the last step's examples (NaN when not known).
  virtual void on_steps(int64_t steps_done, double sampled_loss) = 0;
};

// Loss and accuracy over a set of rows.
struct Evaluation {
  double loss = 0.0;      // mean binary cross-entropy
  double accuracy = 0.0;  // fraction of rows with (z > 0) == y
  int64_t correct = 0;
  int64_t rows = 0;
};

}  // namespace khsgd
