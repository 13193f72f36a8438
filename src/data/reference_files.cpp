#include "khsgd/data/reference_files.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "khsgd/base/errors.hpp"
#include "khsgd/data/files.hpp"
#include "khsgd/data/pt_stream.hpp"
#include "khsgd/run/results.hpp"
#include "khsgd/sorting/sorter_registry.hpp"

namespace khsgd {

namespace {

std::vector<std::string> split(const std::string& line, char separator) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, separator)) fields.push_back(field);
  return fields;
}

double number(const std::string& text, const std::string& source) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') throw UserError(source + ": '" + text + "' is not a number");
  return value;
}

// The reference's accuracy is total_correct / len(rows) in Python: metrics.csv prints it to nine
// digits, which for fewer than 10^8 rows still pins down the count of correct rows.
double exact_fraction(double printed, int64_t rows) {
  if (rows <= 0) return printed;
  return static_cast<double>(std::llround(printed * static_cast<double>(rows))) /
         static_cast<double>(rows);
}

// The columns `names` of a CSV text with a header line, parsed line by line: the split lines are
// never held all at once (a long run's time log has one per epoch).
std::vector<std::vector<float>> csv_columns(const std::string& text,
                                            const std::vector<std::string>& names,
                                            const std::string& source) {
  std::istringstream in(text);
  std::string line;
  std::vector<std::string> header;
  while (header.empty() && std::getline(in, line)) header = split(line, ',');
  std::vector<size_t> at;
  for (const std::string& name : names) {
    at.push_back(std::find(header.begin(), header.end(), name) - header.begin());
    if (!header.empty() && at.back() == header.size())
      throw UserError(source + ": no column '" + name + "'");
  }
  std::vector<std::vector<float>> columns(names.size());
  for (int number_of_line = 2; std::getline(in, line);) {
    if (line.empty()) continue;
    const std::vector<std::string> fields = split(line, ',');
    for (size_t c = 0; c < names.size(); ++c) {
      if (at[c] >= fields.size())
        throw UserError(source + ": line " + std::to_string(number_of_line) + " has no '" +
                        names[c] + "'");
      columns[c].push_back(static_cast<float>(number(fields[at[c]], source)));
    }
    ++number_of_line;
  }
  if (columns.empty() || columns[0].empty()) throw UserError(source + ": no epochs");
  return columns;
}

std::string read_text(const std::string& path) {
  std::optional<std::string> text = read_regular_file(path);
  if (!text) throw_io_error("read", path, ENOENT);
  return std::move(*text);
}

// results.pt's columns, parsed once; emitted as many times as the writer asks.
struct ResultColumns {
  std::vector<float> train_loss, test_loss;
  std::vector<double> train_acc, test_acc;
};

// metrics.csv: epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds
ResultColumns result_columns(const std::string& metrics_rows, int64_t train_rows,
                             int64_t test_rows) {
  ResultColumns c;
  std::istringstream in(metrics_rows);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const std::vector<std::string> row = split(line, ',');
    if (row.size() < 5)
      throw UserError("metrics.csv: a row with " + std::to_string(row.size()) +
                      " fields, expected " + kMetricsHeader);
    c.train_loss.push_back(static_cast<float>(number(row[1], "metrics.csv")));
    c.train_acc.push_back(exact_fraction(number(row[2], "metrics.csv"), train_rows));
    c.test_loss.push_back(static_cast<float>(number(row[3], "metrics.csv")));
    c.test_acc.push_back(exact_fraction(number(row[4], "metrics.csv"), test_rows));
  }
  return c;
}

// {"loss": [0-dim float32 tensor per epoch], "acc": [float per epoch]}
void emit_split(SavedEmitter& out, const std::vector<float>& losses,
                const std::vector<double>& accuracies) {
  out.begin_dict();
  out.key("loss");
  out.begin_list();
  for (const float& loss : losses) out.tensor({}, &loss, 1);
  out.end_list();
  out.key("acc");
  out.begin_list();
  for (const double accuracy : accuracies) out.real(accuracy);
  out.end_list();
  out.end_dict();
}

SavedSource results_source(const std::string& metrics_rows, int64_t train_rows, int64_t test_rows) {
  auto c =
      std::make_shared<const ResultColumns>(result_columns(metrics_rows, train_rows, test_rows));
  return [c](SavedEmitter& out) {
    out.begin_dict();
    out.key("train");
    emit_split(out, c->train_loss, c->train_acc);
    out.key("test");
    emit_split(out, c->test_loss, c->test_acc);
    out.end_dict();
  };
}

// time-R.pt's columns, parsed once.
struct TimeColumns {
  std::vector<float> epoch_seconds;
  std::map<std::string, std::vector<float>> categories;  // the reference's label -> per epoch
  std::vector<std::string> first_labels;  // the labels before "epoch-2", in the reference's order
};

TimeColumns time_columns(const std::string& time_csv, const std::string& sorter,
                         const std::string& source) {
  // time-rankR.csv's column of each of the reference's per-category labels.
  const std::vector<std::pair<std::string, std::string>> labels = {
      {"sorter", "sorter"},
      {"communication", "communication"},
      {"dataset", "dataset"},
      {"forward-backward", "forward_backward"},
      {"SGD", "sgd"}};
  std::vector<std::string> names = {"train_seconds"};
  for (const auto& label : labels) names.push_back(label.second);
  std::vector<std::vector<float>> columns = csv_columns(time_csv, names, source);
  TimeColumns t;
  t.epoch_seconds = std::move(columns[0]);
  for (size_t i = 0; i < labels.size(); ++i)
    t.categories[labels[i].first] = std::move(columns[i + 1]);
  // The order in which the reference's timer first meets each label: "SGD" times the optimizer's
  // creation before epoch 1; the first step's labels come in the sorter's order (its registry
  // entry's time_labels).
  t.first_labels = {"SGD", "sorter", "epoch-1"};
  const FirstStepLabels& first_step = sorter_info(sorter).time_labels;
  t.first_labels.insert(t.first_labels.end(), first_step.begin(), first_step.end());
  return t;
}

// {label: float32 tensor}: a category's total per epoch, "epoch-E" the epoch's seconds; NaN
// throughout for the memory dicts (`measured` false).
void emit_labels(SavedEmitter& out, const TimeColumns& t, bool measured) {
  const size_t epochs = t.epoch_seconds.size();
  const std::vector<float> nan(epochs, std::numeric_limits<float>::quiet_NaN());
  auto emit = [&](const std::string& label, const float* values, size_t count) {
    out.key(label);
    const float* shown = measured ? values : nan.data();
    out.tensor({static_cast<int64_t>(count)}, shown, count);
  };
  auto emit_epoch = [&](size_t e) {
    emit("epoch-" + std::to_string(e), &t.epoch_seconds[e - 1], 1);
  };
  out.begin_dict();
  for (const std::string& label : t.first_labels) {
    if (label == "epoch-1")
      emit_epoch(1);
    else
      emit(label, t.categories.at(label).data(), epochs);
  }
  for (size_t e = 2; e <= epochs; ++e) emit_epoch(e);
  out.end_dict();
}

SavedSource times_source(const std::string& time_csv, const std::string& sorter,
                         const std::string& source) {
  auto t = std::make_shared<const TimeColumns>(time_columns(time_csv, sorter, source));
  return [t](SavedEmitter& out) {
    out.begin_dict();
    out.key("time");
    emit_labels(out, *t, true);
    for (const char* memory : {"cuda-max", "cuda-current", "ram"}) {
      out.key(memory);
      emit_labels(out, *t, false);
    }
    out.end_dict();
  };
}

}  // namespace

SavedObject reference_results(const std::string& metrics_rows, int64_t train_rows,
                              int64_t test_rows) {
  return saved_object_of(results_source(metrics_rows, train_rows, test_rows));
}

SavedObject reference_times(const std::string& time_csv, const std::string& sorter,
                            const std::string& source) {
  return saved_object_of(times_source(time_csv, sorter, source));
}

ReferenceFiles::ReferenceFiles(std::string dir, int rank, std::string sorter, int64_t train_rows,
                               int64_t test_rows)
    : dir_(std::move(dir)),
      rank_(rank),
      sorter_(std::move(sorter)),
      train_rows_(train_rows),
      test_rows_(test_rows) {}

void ReferenceFiles::prepare() const { make_run_subfolder(dir_ + "/time"); }

void ReferenceFiles::update(bool last, const std::string* metrics_rows) {
  auto now = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  const double start = now();
  if (!last && start < next_due_) return;
  const std::string time_log = time_log_path(dir_, rank_);
  // Streamed (pt_stream.hpp): built whole, these files cost memory in proportion to the epochs.
  write_saved_stream(dir_ + "/time/time-" + std::to_string(rank_) + ".pt",
                     times_source(read_text(time_log), sorter_, time_log));
  if (metrics_rows != nullptr)
    write_saved_stream(dir_ + "/results.pt",
                       results_source(*metrics_rows, train_rows_, test_rows_));
  const double end = now();
  next_due_ = end + 20 * (end - start);
}

}  // namespace khsgd
