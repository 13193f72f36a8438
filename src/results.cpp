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

void make_directories(const std::string& path) {
  std::string prefix;
  size_t at = 0;
  while (at != std::string::npos) {
    at = path.find('/', at + 1);
    prefix = path.substr(0, at);
    if (prefix.empty()) continue;
    if (::mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST)
      throw UserError("cannot create results folder '" + prefix + "': " + std::strerror(errno));
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))
    throw UserError("results folder '" + path + "' is not a folder");
  if (::access(path.c_str(), W_OK) != 0)
    throw UserError("results folder '" + path + "' is not writable: " + std::strerror(errno));
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string partial = path + ".partial";
  {
    std::ofstream out(partial, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw UserError("cannot write '" + partial + "': " + std::strerror(errno));
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0)
    throw UserError("cannot rename '" + partial + "' to '" + path + "': " + std::strerror(errno));
}

namespace {

std::ofstream open_for_writing(const std::string& path) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) throw UserError("cannot write '" + path + "': " + std::strerror(errno));
  return out;
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, const std::string& earlier_rows)
    : path_(path), rows_(earlier_rows) {
  write_file_atomically(path, std::string(kMetricsHeader) + "\n" + earlier_rows);
  out_.open(path, std::ios::app);
  if (!out_) throw UserError("cannot write '" + path + "': " + std::strerror(errno));
}

void MetricsLog::append(const EpochRecord& r) {
  char line[512];
  std::snprintf(line, sizeof line, "%lld,%.9g,%.9g,%.9g,%.9g,%.6f,%.6f\n",
                static_cast<long long>(r.epoch), r.train.loss, r.train.accuracy, r.test.loss,
                r.test.accuracy, r.train_seconds, r.eval_seconds);
  out_ << line;
  out_.flush();
  if (!out_) throw UserError("cannot append to '" + path_ + "': " + std::strerror(errno));
  rows_ += line;
}

LineLog::LineLog(const std::string& path, const std::string& header, int64_t keep_lines)
    : path_(path) {
  if (keep_lines < 0) {
    write_file_atomically(path, header.empty() ? "" : header + "\n");
  } else {
    std::ifstream in(path);
    std::string kept, line;
    int64_t count = 0;
    while (count < keep_lines && std::getline(in, line)) {
      kept += line + "\n";
      ++count;
    }
    if (count < keep_lines)
      throw UserError("'" + path + "' holds " + std::to_string(count) + " lines, the checkpoint needs " +
                      std::to_string(keep_lines) + "; use --overwrite to start the run over");
    write_file_atomically(path, kept);
  }
  out_.open(path, std::ios::app);
  if (!out_) throw UserError("cannot write '" + path + "': " + std::strerror(errno));
}

void LineLog::append(const std::string& line) {
  out_ << line << '\n';
  out_.flush();
  if (!out_) throw UserError("cannot append to '" + path_ + "': " + std::strerror(errno));
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

void remove_run_files(const std::string& dir) {
  DIR* folder = ::opendir(dir.c_str());
  if (folder == nullptr) return;
  std::vector<std::string> doomed;
  while (const dirent* entry = ::readdir(folder)) {
    const std::string name = entry->d_name;
    auto starts = [&](const char* prefix) { return name.rfind(prefix, 0) == 0; };
    if (name == "config.json" || name == "metrics.csv" || name == "summary.json" ||
        starts("orders-rank") || starts("time-rank") || starts("grads-epoch") ||
        starts("checkpoint-rank") || name.find(".partial") != std::string::npos)
      doomed.push_back(dir + "/" + name);
  }
  ::closedir(folder);
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
