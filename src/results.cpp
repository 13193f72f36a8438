#include "khsgd/results.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "khsgd/errors.hpp"

namespace khsgd {

namespace {

// JSON for config.json and summary.json: a string literal, and a flat object from (key,
// already-encoded value) pairs.
std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char ch : text) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", ch);
          out += escaped;
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string json_object(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out = "{\n";
  for (size_t i = 0; i < fields.size(); ++i)
    out += "  " + json_string(fields[i].first) + ": " + fields[i].second +
           (i + 1 < fields.size() ? ",\n" : "\n");
  return out + "}\n";
}

}  // namespace

std::string run_name(const Config& c) {
  const std::string data = c.dataset == "synthetic" ? "synthetic" : "hmda";
  return "LR-" + data + "-" + c.sorter + "-node-" + std::to_string(c.node_cnt) + "-lr-" +
         python_float_repr(c.lr) + "-B-" + std::to_string(c.B) + "-seed-" + std::to_string(c.seed);
}

std::string run_directory(const Config& c) {
  return c.results_dir + "/" + c.exp + "-" + std::to_string(c.epochs) + "/" + run_name(c);
}

namespace {

// The first `count` lines of `path`; UserError if it holds fewer.
std::string first_lines(const std::string& path, int64_t count) {
  std::ifstream in(path);
  std::string kept, line;
  int64_t got = 0;
  while (got < count && std::getline(in, line)) {
    kept += line + "\n";
    ++got;
  }
  if (got < count)
    throw UserError("'" + path + "' holds " + std::to_string(got) +
                    " lines, the checkpoint needs " + std::to_string(count) +
                    "; use --overwrite to start the run over");
  return kept;
}

}  // namespace

LineLog::LineLog(const std::string& path, const std::string& header, int64_t keep_lines)
    : LineLog(path, keep_lines < 0 ? (header.empty() ? "" : header + "\n")
                                   : first_lines(path, keep_lines)) {}

namespace {

// Writes the file's first text (atomically) before it is opened for appending.
const std::string& started(const std::string& path, const std::string& initial_text) {
  write_file_atomically(path, initial_text);
  return path;
}

}  // namespace

LineLog::LineLog(const std::string& path, const std::string& initial_text)
    : file_(started(path, initial_text)) {}

void LineLog::append(const std::string& line) { file_.append(line + "\n"); }

MetricsLog::MetricsLog(const std::string& path, const std::string& earlier_rows)
    : file_(path, std::string(kMetricsHeader) + "\n" + earlier_rows), rows_(earlier_rows) {}

void MetricsLog::append(const EpochRecord& r) {
  char line[512];
  std::snprintf(line, sizeof line, "%lld,%.9g,%.9g,%.9g,%.9g,%.6f,%.6f",
                static_cast<long long>(r.epoch), r.train.loss, r.train.accuracy, r.test.loss,
                r.test.accuracy, r.train_seconds, r.eval_seconds);
  file_.append(line);
  rows_ += std::string(line) + "\n";
}

bool diverged(const EpochRecord& r) {
  return !std::isfinite(r.train.loss) || !std::isfinite(r.test.loss);
}

int64_t first_nonfinite_epoch(const std::string& rows) {
  std::istringstream in(rows);
  std::string line;
  while (std::getline(in, line)) {
    // epoch,train_loss,train_acc,test_loss,...: strtod reads "nan" and "inf" as printed.
    EpochRecord r;
    char* at = nullptr;
    r.epoch = std::strtoll(line.c_str(), &at, 10);
    if (*at != ',') continue;
    r.train.loss = std::strtod(at + 1, &at);
    if (*at == ',') std::strtod(at + 1, &at);
    if (*at == ',') r.test.loss = std::strtod(at + 1, &at);
    if (diverged(r)) return r.epoch;
  }
  return 0;
}

namespace {

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return text;
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // Linux reports KiB
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

std::string fixed(double value, int digits) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

std::string exact(double value) {
  char text[40];
  std::snprintf(text, sizeof text, "%.17g", value);
  return text;
}

}  // namespace

std::string time_line(int64_t epoch, const EpochTimes& t, double train_seconds) {
  char line[256];
  std::snprintf(line, sizeof line, "%lld,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%d",
                static_cast<long long>(epoch), t.sorter, t.communication, t.dataset,
                t.forward_backward, t.sgd, train_seconds, t.estimated ? 1 : 0);
  return line;
}

std::string config_json(const Config& c, const Launch& launch, const RunPlacement& placement,
                        const Dataset& data, const Partition& p) {
  auto str = [](const std::string& s) { return json_string(s); };
  auto num = [](auto v) { return std::to_string(v); };
  auto flag = [](bool on) { return std::string(on ? "true" : "false"); };
  return json_object({
      {"sorter", str(c.sorter)},
      {"seed", num(c.seed)},
      {"lr", exact(c.lr)},
      {"B", num(c.B)},
      {"momentum", exact(c.momentum)},
      {"epochs", num(c.epochs)},
      {"node_cnt", num(c.node_cnt)},
      {"in_process", c.in_process ? "true" : "false"},
      {"backend", str(placement.backend)},
      {"exp", str(c.exp)},
      {"device", str(placement.device)},
      {"dataset", str(c.dataset)},
      {"data_dir", str(c.data_dir)},
      {"results_dir", str(c.results_dir)},
      {"save_orders", flag(c.save_orders)},
      {"save_grads", str(epoch_list_text(c.save_grads))},
      {"synthetic_rows", num(c.synthetic_rows)},
      {"profile", flag(c.profile)},
      {"world_size", num(launch.world_size)},
      {"launcher", str(launch.launcher)},
      {"master", str(launch.master_addr + ":" + std::to_string(launch.master_port))},
      {"host", str(this_host())},
      {"data_source", str(data.source)},
      {"train_rows", num(data.n_train)},
      {"test_rows", num(data.n_test)},
      {"features", num(data.d)},
      {"used_train_rows", num(p.used_rows)},
      {"shard_rows", num(p.shard_rows)},
      {"microbatch", num(p.microbatch)},
      {"steps_per_epoch", num(p.num_batches)},
      {"libtorch", str(placement.libtorch)},
      {"started_utc", str(utc_now())},
  });
}

std::string summary_json(const RunSummary& s) {
  std::vector<std::pair<std::string, std::string>> fields = {
      {"finished", "true"},
      {"epochs", std::to_string(s.epochs)},
      {"resumed_after_epoch", std::to_string(s.resumed_after_epoch)},
      {"median_train_seconds", fixed(median(s.train_seconds), 6)},
      {"median_eval_seconds", fixed(median(s.eval_seconds), 6)},
      {"wall_seconds", fixed(s.wall_seconds, 6)},
      {"peak_rss_mib", fixed(peak_rss_mib(), 6)},
      // Still "finished" (every epoch ran; a sweep does not run it again), but its numbers are
      // not results: readers (plots/khsgd_results.py) show it as diverged.
      {"diverged", s.first_nonfinite_epoch > 0 ? "true" : "false"},
      {"first_nonfinite_epoch",
       s.first_nonfinite_epoch > 0 ? std::to_string(s.first_nonfinite_epoch) : "null"}};
  if (s.peak_gpu_mib >= 0) fields.emplace_back("peak_gpu_mib", fixed(s.peak_gpu_mib, 6));
  return json_object(fields);
}

std::string time_log_path(const std::string& dir, int rank) {
  return dir + "/time-rank" + std::to_string(rank) + ".csv";
}

std::string order_line(const std::vector<int64_t>& order) {
  std::string line;
  line.reserve(order.size() * 7);
  char number[24];
  for (size_t i = 0; i < order.size(); ++i) {
    const int length = std::snprintf(number, sizeof number, i ? ",%lld" : "%lld",
                                     static_cast<long long>(order[i]));
    line.append(number, length);
  }
  return line;
}

RunFolderState inspect_run_folder(const std::string& dir) {
  RunFolderState state;
  struct stat info {};
  state.exists = ::stat(dir.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
  if (!state.exists) return state;
  auto present = [&](const char* name) { return ::access((dir + "/" + name).c_str(), F_OK) == 0; };
  state.has_results = present("config.json") || present("metrics.csv");
  state.has_checkpoint =
      present("checkpoint-rank0.bin") || present("checkpoint-rank0.previous.bin");
  std::ifstream summary(dir + "/summary.json");
  const std::string text((std::istreambuf_iterator<char>(summary)),
                         std::istreambuf_iterator<char>());
  state.finished = text.find("\"finished\": true") != std::string::npos;
  return state;
}

void check_run_folder(const std::string& dir, bool resume, bool overwrite) {
  const RunFolderState state = inspect_run_folder(dir);
  if (overwrite || !state.exists || !state.has_results) return;
  if (state.finished)
    throw UserError("'" + dir +
                    "' already holds a finished run; use --overwrite to replace it (or "
                    "another --results_dir / --exp to keep both)");
  if (!resume)
    throw UserError("'" + dir +
                    "' holds an unfinished run; use --resume to continue it from its "
                    "last checkpoint or --overwrite to start over");
  if (!state.has_checkpoint)
    throw UserError("'" + dir +
                    "' holds an unfinished run but no checkpoint to resume from; use "
                    "--overwrite to start over");
}

namespace {

// The files in `dir` whose names `is_ours` accepts.
std::vector<std::string> files_in(const std::string& dir, bool (*is_ours)(const std::string&)) {
  std::vector<std::string> found;
  DIR* folder = ::opendir(dir.c_str());
  if (folder == nullptr) return found;
  while (const dirent* entry = ::readdir(folder)) {
    const std::string name = entry->d_name;
    if (is_ours(name)) found.push_back(dir + "/" + name);
  }
  ::closedir(folder);
  return found;
}

bool starts_with(const std::string& name, const char* prefix) { return name.rfind(prefix, 0) == 0; }

bool is_run_file(const std::string& name) {
  return name == "config.json" || name == "metrics.csv" || name == "summary.json" ||
         name == "results.pt" || starts_with(name, "orders-rank") ||
         starts_with(name, "time-rank") || starts_with(name, "grads-epoch") ||
         starts_with(name, "checkpoint-rank") || name.find(".partial") != std::string::npos;
}

bool is_reference_time_file(const std::string& name) { return starts_with(name, "time-"); }

}  // namespace

void remove_run_files(const std::string& dir) {
  std::vector<std::string> doomed = files_in(dir, is_run_file);
  for (const std::string& path : files_in(dir + "/time", is_reference_time_file))
    doomed.push_back(path);
  for (const auto& path : doomed)
    if (std::remove(path.c_str()) != 0)
      throw UserError("cannot remove '" + path + "' for --overwrite: " + std::strerror(errno));
}

}  // namespace khsgd
