#include "khsgd/reference_files.hpp"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include "khsgd/errors.hpp"
#include "khsgd/files.hpp"
#include "khsgd/results.hpp"
#include "khsgd/sorter_registry.hpp"

namespace khsgd {

namespace {

std::vector<std::string> split(const std::string& line, char separator) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, separator)) fields.push_back(field);
  return fields;
}

// The non-empty lines of `text`, each split at commas.
std::vector<std::vector<std::string>> csv_lines(const std::string& text) {
  std::vector<std::vector<std::string>> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(split(line, ','));
  return lines;
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

SavedObject float32_scalar(double value) {
  return SavedObject::float32_tensor({}, {static_cast<float>(value)});
}

SavedObject float32_vector(const std::vector<float>& values) {
  return SavedObject::float32_tensor({static_cast<int64_t>(values.size())}, values);
}

SavedObject loss_and_accuracy(const SavedObject& losses, const SavedObject& accuracies) {
  SavedObject split_results = SavedObject::dict();
  split_results.set("loss", losses);
  split_results.set("acc", accuracies);
  return split_results;
}

// EventTimer.summary()'s per-label dict, every label's series given by `series`.
template <typename Series>
SavedObject per_label(const std::vector<std::string>& labels, Series series) {
  SavedObject out = SavedObject::dict();
  for (const std::string& label : labels) out.set(label, float32_vector(series(label)));
  return out;
}

// The values of column `name` in the rows after the header line.
std::vector<float> column_values(const std::vector<std::vector<std::string>>& lines,
                                 const std::string& name, const std::string& source) {
  size_t at = 0;
  while (at < lines[0].size() && lines[0][at] != name) ++at;
  if (at == lines[0].size()) throw UserError(source + ": no column '" + name + "'");
  std::vector<float> values;
  for (size_t i = 1; i < lines.size(); ++i) {
    if (at >= lines[i].size())
      throw UserError(source + ": line " + std::to_string(i + 1) + " has no '" + name + "'");
    values.push_back(static_cast<float>(number(lines[i][at], source)));
  }
  return values;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw_io_error("read", path, errno);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

SavedObject reference_results(const std::string& metrics_rows, int64_t train_rows,
                              int64_t test_rows) {
  // metrics.csv: epoch,train_loss,train_acc,test_loss,test_acc,train_seconds,eval_seconds
  SavedObject train_loss = SavedObject::list(), train_acc = SavedObject::list();
  SavedObject test_loss = SavedObject::list(), test_acc = SavedObject::list();
  for (const std::vector<std::string>& row : csv_lines(metrics_rows)) {
    if (row.size() < 5)
      throw UserError("metrics.csv: a row with " + std::to_string(row.size()) +
                      " fields, expected " + kMetricsHeader);
    train_loss.append(float32_scalar(number(row[1], "metrics.csv")));
    train_acc.append(SavedObject::real(exact_fraction(number(row[2], "metrics.csv"), train_rows)));
    test_loss.append(float32_scalar(number(row[3], "metrics.csv")));
    test_acc.append(SavedObject::real(exact_fraction(number(row[4], "metrics.csv"), test_rows)));
  }
  SavedObject results = SavedObject::dict();
  results.set("train", loss_and_accuracy(train_loss, train_acc));
  results.set("test", loss_and_accuracy(test_loss, test_acc));
  return results;
}

SavedObject reference_times(const std::string& time_csv, const std::string& sorter,
                            const std::string& source) {
  const std::vector<std::vector<std::string>> lines = csv_lines(time_csv);
  if (lines.size() < 2) throw UserError(source + ": no epochs");
  const std::vector<float> epoch_seconds = column_values(lines, "train_seconds", source);
  // time-rankR.csv's column of each of the reference's per-category labels.
  std::map<std::string, std::vector<float>> categories;
  for (const auto& [label, column] :
       std::vector<std::pair<std::string, std::string>>{{"sorter", "sorter"},
                                                        {"communication", "communication"},
                                                        {"dataset", "dataset"},
                                                        {"forward-backward", "forward_backward"},
                                                        {"SGD", "sgd"}})
    categories[label] = column_values(lines, column, source);

  // The order in which the reference's timer first meets each label: "SGD" times the optimizer's
  // creation before epoch 1; the first step's labels come in the sorter's order (its registry
  // entry's time_labels).
  std::vector<std::string> labels = {"SGD", "sorter", "epoch-1"};
  const FirstStepLabels& first_step = sorter_info(sorter).time_labels;
  labels.insert(labels.end(), first_step.begin(), first_step.end());
  for (size_t e = 2; e <= epoch_seconds.size(); ++e) labels.push_back("epoch-" + std::to_string(e));

  auto seconds = [&](const std::string& label) {
    if (label.rfind("epoch-", 0) != 0) return categories.at(label);
    return std::vector<float>{epoch_seconds.at(std::stoul(label.substr(6)) - 1)};
  };
  auto not_measured = [&](const std::string& label) {
    return std::vector<float>(seconds(label).size(), std::numeric_limits<float>::quiet_NaN());
  };
  SavedObject times = SavedObject::dict();
  times.set("time", per_label(labels, seconds));
  for (const char* memory : {"cuda-max", "cuda-current", "ram"})
    times.set(memory, per_label(labels, not_measured));
  return times;
}

ReferenceFiles::ReferenceFiles(std::string dir, int rank, std::string sorter, int64_t train_rows,
                               int64_t test_rows)
    : dir_(std::move(dir)),
      rank_(rank),
      sorter_(std::move(sorter)),
      train_rows_(train_rows),
      test_rows_(test_rows) {}

void ReferenceFiles::prepare() const { make_directories(dir_ + "/time"); }

void ReferenceFiles::update(bool last, const std::string* metrics_rows) {
  auto now = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  const double start = now();
  if (!last && start < next_due_) return;
  const std::string time_log = time_log_path(dir_, rank_);
  write_saved_object(dir_ + "/time/time-" + std::to_string(rank_) + ".pt",
                     reference_times(read_text(time_log), sorter_, time_log));
  if (metrics_rows != nullptr)
    write_saved_object(dir_ + "/results.pt",
                       reference_results(*metrics_rows, train_rows_, test_rows_));
  const double end = now();
  next_due_ = end + 20 * (end - start);
}

}  // namespace khsgd
