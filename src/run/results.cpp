#include "khsgd/run/results.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>

#include "khsgd/base/errors.hpp"
#include "khsgd/data/utf8.hpp"

namespace khsgd {

namespace {

// JSON for config.json and summary.json: a string literal, and a flat object from (key,
// already-encoded value) pairs.
std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (size_t at = 0; at < text.size();) {
    const char ch = text[at];
    const size_t length = utf8_sequence(text, at);
    if (length == 0) {
      // Not UTF-8 (a host name, an environment variable): JSON holds text only, so the byte
      // becomes U+FFFD, and the file stays readable by every JSON reader.
      out += "\\ufffd";
      ++at;
      continue;
    }
    if (length > 1) {
      out.append(text, at, length);
      at += length;
      continue;
    }
    ++at;
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
  std::istringstream in(read_regular_file(path).value_or(""));
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

namespace {

// The flags of config.json, encoded as it holds them: the part of the file that the flags alone
// decide, so a run folder can be checked against the flags of a later command (run_differs_from).
std::vector<std::pair<std::string, std::string>> flag_fields(const Config& c) {
  auto str = [](const std::string& s) { return json_string(s); };
  auto num = [](auto v) { return std::to_string(v); };
  auto flag = [](bool on) { return std::string(on ? "true" : "false"); };
  return {
      {"sorter", str(c.sorter)},
      {"seed", num(c.seed)},
      {"lr", exact(c.lr)},
      {"B", num(c.B)},
      {"momentum", exact(c.momentum)},
      {"epochs", num(c.epochs)},
      {"node_cnt", num(c.node_cnt)},
      {"in_process", flag(c.in_process)},
      {"exp", str(c.exp)},
      {"dataset", str(c.dataset)},
      {"data_dir", str(c.data_dir)},
      {"results_dir", str(c.results_dir)},
      {"save_orders", flag(c.save_orders)},
      {"save_grads", str(epoch_list_text(c.save_grads))},
      {"synthetic_rows", num(c.synthetic_rows)},
      {"profile", flag(c.profile)},
  };
}

}  // namespace

std::string config_json(const Config& c, const Launch& launch, const RunPlacement& placement,
                        const Dataset& data, const Partition& p) {
  auto str = [](const std::string& s) { return json_string(s); };
  auto num = [](auto v) { return std::to_string(v); };
  std::vector<std::pair<std::string, std::string>> fields = flag_fields(c);
  const std::vector<std::pair<std::string, std::string>> more = {
      {"backend", str(placement.backend)},
      {"device", str(placement.device)},
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
  };
  fields.insert(fields.end(), more.begin(), more.end());
  return json_object(fields);
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

namespace {

// Whether `line` is epoch `epoch`'s row of time-rankR.csv: its number first, every column there.
bool is_time_row(const std::string& line, int64_t epoch) {
  static const std::string header = kTimeHeader;
  const std::string start = std::to_string(epoch) + ",";
  return line.compare(0, start.size(), start) == 0 &&
         std::count(line.begin(), line.end(), ',') == std::count(header.begin(), header.end(), ',');
}

}  // namespace

std::string resumed_time_log(const std::string& path, int64_t epochs,
                             std::vector<int64_t>* rebuilt) {
  std::istringstream in(read_regular_file(path).value_or(""));
  std::vector<std::string> lines;
  std::string line;
  while (static_cast<int64_t>(lines.size()) <= epochs && std::getline(in, line))
    lines.push_back(line);
  std::string text = std::string(kTimeHeader) + "\n";
  for (int64_t epoch = 1; epoch <= epochs; ++epoch) {
    const size_t at = static_cast<size_t>(epoch);
    if (at < lines.size() && is_time_row(lines[at], epoch)) {
      text += lines[at] + "\n";
      continue;
    }
    // Lost: no times to give, but the row keeps every later epoch on its own line (time/time-R.pt
    // reads row E as epoch E). estimated = 1: nothing in it was measured.
    text += std::to_string(epoch) + ",nan,nan,nan,nan,nan,nan,1\n";
    if (rebuilt != nullptr) rebuilt->push_back(epoch);
  }
  return text;
}

std::string epoch_ranges(const std::vector<int64_t>& epochs) {
  std::string text;
  for (size_t i = 0; i < epochs.size(); ++i) {
    size_t last = i;
    while (last + 1 < epochs.size() && epochs[last + 1] == epochs[last] + 1) ++last;
    text += (text.empty() ? "" : ", ") + std::to_string(epochs[i]);
    if (last > i) text += "-" + std::to_string(epochs[last]);
    i = last;
  }
  return text;
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
  // Entries of any kind count (check_run_folder_entries refuses those that are not files).
  auto present = [&](const char* name) { return ::lstat((dir + "/" + name).c_str(), &info) == 0; };
  state.has_results = present("config.json") || present("metrics.csv");
  state.has_checkpoint =
      present("checkpoint-rank0.bin") || present("checkpoint-rank0.previous.bin");
  const std::string summary = read_regular_file(dir + "/summary.json").value_or("");
  state.finished = summary.find("\"finished\": true") != std::string::npos;
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

// The fields of a flat JSON object as json_object writes it: key -> the value's JSON text (a
// string keeps its quotes). None when `text` is not such an object (a hand edit, a damaged file).
std::optional<std::map<std::string, std::string>> read_flat_object(const std::string& text) {
  std::map<std::string, std::string> fields;
  size_t at = 0;
  auto space = [&] {
    while (at < text.size() && std::isspace(static_cast<unsigned char>(text[at]))) ++at;
  };
  auto literal = [&]() -> std::optional<std::string> {  // a string, quotes and escapes kept
    const size_t start = at++;
    while (at < text.size() && text[at] != '"') at += text[at] == '\\' ? 2 : 1;
    if (at >= text.size()) return std::nullopt;
    return text.substr(start, ++at - start);
  };
  space();
  if (at >= text.size() || text[at++] != '{') return std::nullopt;
  for (space(); at < text.size() && text[at] != '}'; space()) {
    if (text[at] != '"') return std::nullopt;
    const std::optional<std::string> key = literal();
    space();
    if (!key || at >= text.size() || text[at++] != ':') return std::nullopt;
    space();
    std::optional<std::string> value;
    if (at < text.size() && text[at] == '"') {
      value = literal();
    } else {
      const size_t start = at;
      while (at < text.size() && text[at] != ',' && text[at] != '}' &&
             !std::isspace(static_cast<unsigned char>(text[at])))
        ++at;
      value = text.substr(start, at - start);
    }
    if (!value || value->empty()) return std::nullopt;
    fields[key->substr(1, key->size() - 2)] = *value;
    space();
    if (at < text.size() && text[at] == ',') ++at;
  }
  if (at >= text.size()) return std::nullopt;
  return fields;
}

// A JSON value for a message: a string without its quotes, a real number as Python prints it
// (0.9, not config.json's exact 0.90000000000000002).
std::string shown(const std::string& json_value) {
  const bool quoted = json_value.size() >= 2 && json_value.front() == '"';
  if (quoted) return "'" + json_value.substr(1, json_value.size() - 2) + "'";
  char* end = nullptr;
  const double number = std::strtod(json_value.c_str(), &end);
  const bool real = *end == '\0' && json_value.find_first_of(".eE") != std::string::npos;
  return "'" + (real ? python_float_repr(number) : json_value) + "'";
}

}  // namespace

std::string run_differs_from(const std::string& dir, const Config& c) {
  const std::string path = dir + "/config.json";
  const std::optional<std::string> text = read_regular_file(path);  // never a FIFO or a link
  const auto fields = text ? read_flat_object(*text) : std::nullopt;
  if (!fields) throw UserError("'" + path + "' is missing or is not a config.json khsgd wrote");
  std::vector<std::pair<std::string, std::string>> expected = flag_fields(c);
  // --backend and --device are recorded as resolved: compare them when they were named.
  if (c.backend != "auto") expected.emplace_back("backend", json_string(c.backend));
  if (c.device != "auto") expected.emplace_back("device", json_string(c.device));
  for (const auto& [key, value] : expected) {
    // The folder itself stands for --results_dir; the synthetic set reads no --data_dir.
    if (key == "results_dir" || (key == "data_dir" && c.dataset == "synthetic")) continue;
    const auto there = fields->find(key);
    const std::string was = there == fields->end() ? "(none)" : shown(there->second);
    if (there == fields->end() || there->second != value)
      return "--" + key + " was " + was + " there, " + shown(value) + " here";
  }
  return "";
}

std::string run_state(const std::string& dir, const Config& config) {
  const RunFolderState state = inspect_run_folder(dir);
  if (!state.exists || !state.has_results) return "new";
  const bool has_config = ::access((dir + "/config.json").c_str(), F_OK) == 0;
  if (has_config || state.finished) {
    const std::string difference = has_config
                                       ? run_differs_from(dir, config)
                                       : "its config.json is missing, so its flags are unknown";
    if (!difference.empty())
      throw UserError("'" + dir + "' holds a run with other flags (" + difference +
                      "); use --overwrite to replace it, or another --results_dir / --exp");
  }
  if (state.finished) return "finished";
  return state.has_checkpoint ? "resumable" : "unfinished";
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

bool is_real_folder(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

}  // namespace

void check_run_folder_entries(const std::string& dir) {
  check_regular_entry(dir + "/.lock");
  for (const std::string& path : files_in(dir, is_run_file)) check_regular_entry(path);
  struct stat info {};
  const std::string time = dir + "/time";
  if (::lstat(time.c_str(), &info) != 0) return;
  make_run_subfolder(time);  // refuses anything but a real folder
  for (const std::string& path : files_in(time, is_reference_time_file)) check_regular_entry(path);
}

void remove_run_files(const std::string& dir) {
  std::vector<std::string> doomed = files_in(dir, is_run_file);
  // Never through a link: that would remove the files of a folder elsewhere.
  if (is_real_folder(dir + "/time"))
    for (const std::string& path : files_in(dir + "/time", is_reference_time_file))
      doomed.push_back(path);
  for (const auto& path : doomed)
    if (std::remove(path.c_str()) != 0)
      throw UserError("cannot remove '" + path + "' for --overwrite: " + std::strerror(errno));
}

}  // namespace khsgd
