// The Python reference's own result files, written beside khsgd's, so that plotting built on
// main-LR-HMDA.py's output (its authors' notebooks/LR-HMDA) reads khsgd's runs unchanged:
//
//   results.pt      rank 0: {"train": {"loss": [...], "acc": [...]}, "test": {"loss": [...], "acc":
//   [...]}}
//                   a loss is a 0-dim float32 tensor, an accuracy a Python float (correct / rows),
//                   one entry per epoch, as main-LR-HMDA.py appends them
//   time/time-R.pt  rank R: {"time": {label: tensor}, "cuda-max": {...}, "cuda-current": {...},
//                   "ram": {...}}, d_event_timer.EventTimer.summary()'s layout. Labels: "epoch-E"
//                   holds the epoch's train seconds; "sorter", "communication", "dataset",
//                   "forward-backward", "SGD" hold one total per epoch (the reference keeps one
//                   entry per timed block; its readers sum them). The memory dicts carry the same
//                   labels and lengths, NaN: khsgd measures memory per run (summary.json), not per
//                   timed block.
//
// Both are rebuilt whole from metrics.csv's rows and time-rankR.csv (see update()), so a resumed
// run's files hold every epoch.
#pragma once

#include <cstdint>
#include <string>

#include "khsgd/data/pt_file.hpp"

namespace khsgd {

// results.pt's object from metrics.csv's rows (no header). `train_rows` and `test_rows` turn the
// printed accuracies back into the exact fractions the reference stores.
SavedObject reference_results(const std::string& metrics_rows, int64_t train_rows,
                              int64_t test_rows);

// time-R.pt's object from time-rankR.csv's text (with its header; `source` names it in errors);
// `sorter` decides the label order (the order in which the reference's timer first meets them).
SavedObject reference_times(const std::string& time_csv, const std::string& sorter,
                            const std::string& source = "time-rankR.csv");

class ReferenceFiles {
 public:
  // `train_rows` is N' (the rows the train accuracy counts).
  ReferenceFiles(std::string dir, int rank, std::string sorter, int64_t train_rows,
                 int64_t test_rows);

  // Creates DIR/time (every rank: ranks on other hosts keep their own copy of the folder); one
  // that is there already must be a real folder, not a link (UserError).
  void prepare() const;

  // After an epoch's time line (and on rank 0 its metrics row) is written: rewrites
  // time/time-R.pt and, given metrics.csv's rows, results.pt. A rewrite grows with the epochs
  // done (about 30 us per epoch), so it is skipped while the previous one is more recent than
  // 20 times its cost (at most 5 % of the wall time), except after the `last` epoch; the files
  // of a stopped run then trail its CSVs until --resume rewrites them whole.
  void update(bool last, const std::string* metrics_rows);

 private:
  std::string dir_;
  int rank_;
  std::string sorter_;
  int64_t train_rows_, test_rows_;
  double next_due_ = 0.0;  // steady-clock seconds before which a rewrite is skipped
};

}  // namespace khsgd
