// What a run leaves on disk (README "Output files"):
//
//   RESULTS/EXP-EPOCHS/LR-hmda-SORTER-node-N-lr-LR-B-B-seed-SEED/
//     config.json       every setting, the launch, the data's shape, the LibTorch version
//     metrics.csv       a row per epoch, appended and flushed as the epoch ends
//     orders-rankR.csv  with --save_orders: line e = rank R's local order in epoch e
//
// Only rank 0 writes shared files; each rank writes only its own orders file.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "khsgd/config.hpp"
#include "khsgd/model.hpp"

namespace khsgd {

// "LR-hmda-CD-GraB-node-1-lr-0.005-B-16-seed-1" ("LR-synthetic-..." for the synthetic set).
std::string run_name(const Config& config);
// results_dir/EXP-EPOCHS/run_name
std::string run_directory(const Config& config);

// mkdir -p; throws UserError naming the folder when it cannot be created or written.
void make_directories(const std::string& path);

// Writes `text` to path + ".partial", then renames it over `path`, so readers never see half a file.
void write_file_atomically(const std::string& path, const std::string& text);

struct EpochRecord {
  int64_t epoch = 0;
  Evaluation train, test;
  double train_seconds = 0.0;
  double eval_seconds = 0.0;
};

inline constexpr const char* kMetricsHeader =
    "epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds";

class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);  // truncates and writes the header
  void append(const EpochRecord& record);       // one row, flushed

 private:
  std::string path_;
  std::ofstream out_;
};

class OrdersLog {
 public:
  explicit OrdersLog(const std::string& path);
  void append(const std::vector<int64_t>& order);  // one line, flushed

 private:
  std::string path_;
  std::ofstream out_;
};

// A flat JSON object from (key, already-encoded JSON value) pairs.
std::string json_object(const std::vector<std::pair<std::string, std::string>>& fields);
std::string json_string(const std::string& text);

}  // namespace khsgd
