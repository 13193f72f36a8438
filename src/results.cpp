#include "khsgd/results.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

#include "khsgd/errors.hpp"

namespace khsgd {

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
    throw UserError("'" + path + "' holds " + std::to_string(got) + " lines, the checkpoint needs " +
                    std::to_string(count) + "; use --overwrite to start the run over");
  return kept;
}

}  // namespace

LineLog::LineLog(const std::string& path, const std::string& header, int64_t keep_lines)
    : LineLog(path, keep_lines < 0 ? (header.empty() ? "" : header + "\n") : first_lines(path, keep_lines)) {}

LineLog::LineLog(const std::string& path, const std::string& initial_text) : path_(path) {
  write_file_atomically(path, initial_text);
  out_.open(path, std::ios::app);
  if (!out_) throw UserError("cannot write '" + path + "': " + std::strerror(errno));
}

void LineLog::append(const std::string& line) {
  out_ << line << '\n';
  out_.flush();
  if (!out_) throw UserError("cannot append to '" + path_ + "': " + std::strerror(errno));
}

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
  state.has_checkpoint = present("checkpoint-rank0.bin");
  std::ifstream summary(dir + "/summary.json");
  const std::string text((std::istreambuf_iterator<char>(summary)), std::istreambuf_iterator<char>());
  state.finished = text.find("\"finished\": true") != std::string::npos;
  return state;
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
         name == "results.pt" || starts_with(name, "orders-rank") || starts_with(name, "time-rank") ||
         starts_with(name, "grads-epoch") || starts_with(name, "checkpoint-rank") ||
         name.find(".partial") != std::string::npos;
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

}  // namespace khsgd
