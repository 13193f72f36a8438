// What a run leaves on disk (README "Output files"):
//
//   RESULTS/EXP-EPOCHS/LR-hmda-SORTER-node-N-lr-LR-B-B-seed-SEED/
//     config.json       every setting, the launch, the data's shape, the LibTorch version
//     metrics.csv       a row per epoch, appended and flushed as the epoch ends
//     orders-rankR.csv  with --save_orders: line e = rank R's local order in epoch e
//     time-rankR.csv    rank R's seconds per epoch and category
//     results.pt, time/time-R.pt   the Python reference's files (reference_files.hpp)
//
// Only rank 0 writes shared files; each rank writes only its own orders file.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "khsgd/app/config.hpp"
#include "khsgd/app/launch.hpp"
#include "khsgd/data/data.hpp"
#include "khsgd/data/files.hpp"
#include "khsgd/engine/epoch_report.hpp"

namespace khsgd {

// "LR-hmda-CD-GraB-node-1-lr-0.005-B-16-seed-1" ("LR-synthetic-..." for the synthetic set).
std::string run_name(const Config& config);
// results_dir/EXP-EPOCHS/run_name
std::string run_directory(const Config& config);

struct EpochRecord {
  int64_t epoch = 0;
  Evaluation train, test;
  double train_seconds = 0.0;
  double eval_seconds = 0.0;
};

inline constexpr const char* kMetricsHeader =
    "epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds";

// A file of lines appended as epochs end, each written at once (orders-rankR.csv,
// time-rankR.csv); a line that cannot be written whole is an IoError and leaves no part behind.
class LineLog {
 public:
  // Starts the file with `initial_text`.
  LineLog(const std::string& path, const std::string& initial_text);
  // `keep_lines` < 0 starts it afresh (with `header`, if any); otherwise the file is cut to its
  // first `keep_lines` lines (a resumed run's), UserError if it holds fewer.
  LineLog(const std::string& path, const std::string& header, int64_t keep_lines);
  void append(const std::string& line);

 private:
  AppendFile file_;
};

// metrics.csv: the header and `earlier_rows` (a resumed run's rows, from its checkpoint), then a
// row per epoch; rows() is everything after the header.
class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path, const std::string& earlier_rows = "");
  void append(const EpochRecord& record);
  const std::string& rows() const { return rows_; }

 private:
  LineLog file_;
  std::string rows_;
};

// Whether an epoch's evaluation has a loss that is not a number or infinite: training diverged
// (a learning rate too large) and every later epoch is meaningless.
bool diverged(const EpochRecord& record);
// The first epoch among metrics.csv's `rows` (no header) whose train or test loss is not finite;
// 0 when none (a resumed run's earlier epochs).
int64_t first_nonfinite_epoch(const std::string& rows);

// time-rankR.csv: where an epoch's training time went on one rank (the reference's categories).
inline constexpr const char* kTimeHeader =
    "epoch,sorter,communication,dataset,forward_backward,sgd,train_seconds,estimated";
std::string time_line(int64_t epoch, const EpochTimes& times, double train_seconds);

// Where and with what the run executes, beyond its flags (config.json records it).
struct RunPlacement {
  std::string device;    // "cpu" or "cuda"
  std::string backend;   // the resolved communication backend
  std::string libtorch;  // LibTorch's version
};

// config.json: every setting, the launch, the data's shape and the build, as the run started.
std::string config_json(const Config& config, const Launch& launch, const RunPlacement& placement,
                        const Dataset& data, const Partition& partition);

// summary.json, written last: its presence marks a finished run.
struct RunSummary {
  int64_t epochs = 0;
  int64_t resumed_after_epoch = 0;
  std::vector<double> train_seconds, eval_seconds;  // this process's epochs
  double wall_seconds = 0.0;
  double peak_gpu_mib = -1.0;         // < 0: not a GPU run
  int64_t first_nonfinite_epoch = 0;  // > 0: the run diverged there ("diverged": true)
};
std::string summary_json(const RunSummary& summary);

// DIR/time-rankR.csv: rank R's seconds per epoch and category.
std::string time_log_path(const std::string& dir, int rank);

// What time-rankR.csv at `path` restarts with when a run resumes after `epochs`: the header and a
// row per epoch. The file's rows are kept where they are epochs 1, 2, ... in order; an epoch the
// file lacks (deleted, cut short, damaged) gets "E,nan,nan,nan,nan,nan,nan,1" (its times are
// lost; estimated = 1), and is added to `rebuilt`. Rows past `epochs` (trained again) are dropped.
std::string resumed_time_log(const std::string& path, int64_t epochs,
                             std::vector<int64_t>* rebuilt);

// "1-3, 7" for epochs {1, 2, 3, 7} (sorted), for messages.
std::string epoch_ranges(const std::vector<int64_t>& epochs);

// One epoch's order as a CSV line.
std::string order_line(const std::vector<int64_t>& order);

// What a run folder holds already.
struct RunFolderState {
  bool exists = false;
  bool finished = false;        // summary.json says so
  bool has_results = false;     // config.json or metrics.csv
  bool has_checkpoint = false;  // checkpoint-rank0.bin or its previous generation
};
RunFolderState inspect_run_folder(const std::string& dir);

// The run folder is a trust boundary (files.hpp): every entry a run reads or writes there (.lock,
// the run's files, *.partial, time/ and its files) must be a regular file (time/ a real folder)
// or absent. Throws UserError naming the first that is not, e.g. "'DIR/summary.json' is not a
// regular file (a FIFO); remove it or choose another --exp". Opens nothing.
void check_run_folder_entries(const std::string& dir);

// Whether a run may write into `dir` (rank 0 decides): a finished run is replaced only with
// --overwrite, an unfinished one needs --resume (and a checkpoint) or --overwrite. Throws
// UserError saying which flag to use.
void check_run_folder(const std::string& dir, bool resume, bool overwrite);

// How the run recorded in DIR/config.json differs from what `config` would run: "" when the file
// holds the same value of every flag it records (--backend and --device when they were named; not
// --results_dir, which the folder stands for, nor --data_dir with --dataset synthetic), else
// "--FLAG was 'X' there, 'Y' here" for the first that differs. Throws UserError when config.json
// is missing or is not a flat JSON object.
std::string run_differs_from(const std::string& dir, const Config& config);

// For scripts (khsgd_train --print_run_state): "new" (no results there yet), "finished",
// "resumable" (unfinished, with a checkpoint) or "unfinished" (no checkpoint: only --overwrite
// runs it again). Throws UserError naming the first flag that differs when the folder holds a run
// with other flags, and for a finished run whose config.json is gone (its flags are unknown).
std::string run_state(const std::string& dir, const Config& config);

// Removes the files a run writes (config, metrics, orders, times, gradients, checkpoints,
// summary, the reference's results.pt and time/time-R.pt) from `dir`, nothing else.
void remove_run_files(const std::string& dir);

}  // namespace khsgd
