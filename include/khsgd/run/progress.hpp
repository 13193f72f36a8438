// Progress of a run on rank 0: a bar on a terminal (examples/s, ETA, running loss), a plain line
// every few seconds when the output is a file, nothing with --quiet.
//
// The engine reports every few hundred steps; a report costs a clock read, and the bar is drawn
// at most ten times a second, so the training loop does not notice it.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "khsgd/engine/epoch_report.hpp"

namespace khsgd {

class Progress final : public StepObserver {
 public:
  enum class Mode { Off, Bar, Lines };
  // Bar when `stream` is a terminal, Lines otherwise; Off when disabled.
  Progress(bool enabled, std::FILE* stream, int64_t examples_per_epoch, int64_t steps_per_epoch,
           int64_t epochs);
  Mode mode() const { return mode_; }

  // 1-based. The first call tells where this process began: a run resumed after epoch E starts
  // at E + 1, and the examples/s and the ETA count only the epochs trained since.
  void start_epoch(int64_t epoch);
  void on_steps(int64_t steps_done, double sampled_loss) override;
  // After the epoch's evaluation: its full-train loss stands in where no sampled loss exists.
  void end_epoch(double train_loss);
  // Prints a log line (the per-epoch summary) without tearing the bar.
  void print_line(const std::string& line);
  // Writes `text` (whole lines) to the display's stream, stderr, without tearing the bar; shown
  // with --quiet too.
  void print_notice(const std::string& text);
  void finish();

  // The display now, `seconds` after this process began training.
  std::string text(double seconds) const;

  // The text of the display for the given state: `done_before` of the `examples_done` were done
  // before this process began (a resumed run's), `seconds` is this process's time.
  static std::string render(int64_t examples_done, int64_t examples_total, int64_t done_before,
                            double seconds, double loss, int64_t epoch, int64_t epochs, bool bar);

 private:
  void draw(bool force);
  using Clock = std::chrono::steady_clock;
  Mode mode_;
  std::FILE* stream_;
  int64_t examples_per_epoch_, steps_per_epoch_, epochs_;
  int64_t epoch_ = 0;
  int64_t first_epoch_ = 0;  // the first epoch this process trains
  int64_t examples_done_ = 0;
  double loss_ = -1.0;
  Clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace khsgd
