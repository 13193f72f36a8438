// Shared test helpers: temporary folders, running khsgd_train as a user would, reading its CSVs.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#ifndef KHSGD_TEST_DATA
#error "KHSGD_TEST_DATA must name tests/data"
#endif

namespace khsgd_test {

// The khsgd_train under test: $KHSGD_TEST_TRAIN when set (to run these tests against another
// build, e.g. to see a new test fail on an older one), else this build's.
inline const char* train_binary() {
  const char* other = std::getenv("KHSGD_TEST_TRAIN");
  return other != nullptr && other[0] != '\0' ? other : KHSGD_TRAIN_BINARY;
}

inline std::string test_data(const std::string& relative) {
  return std::string(KHSGD_TEST_DATA) + "/" + relative;
}

// A fresh folder under $TMPDIR (or /tmp), removed when the object dies.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && base[0] ? base : "/tmp") + "/khsgd-test-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (!mkdtemp(buffer.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buffer.data();
  }
  ~TempDir() { std::system(("rm -rf '" + path_ + "'").c_str()); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `command` (already a shell command line) with stdout and stderr captured apart.
inline RunResult run_shell(const std::string& command, const std::string& scratch_dir) {
  const std::string out_path = scratch_dir + "/.stdout", err_path = scratch_dir + "/.stderr";
  const std::string line =
      "(" + command + ") >" + shell_quote(out_path) + " 2>" + shell_quote(err_path);
  const int status = std::system(line.c_str());
  RunResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  return result;
}

inline std::string join_args(const std::vector<std::string>& args) {
  std::string line;
  for (const auto& a : args) line += " " + shell_quote(a);
  return line;
}

// khsgd_train ARGS in `cwd`, as one plain process.
inline RunResult run_train(const std::vector<std::string>& args, const std::string& cwd,
                           const std::string& env = "") {
  return run_shell("cd " + shell_quote(cwd) + " && env -u RANK -u WORLD_SIZE -u LOCAL_RANK " + env +
                       " " + shell_quote(train_binary()) + join_args(args),
                   cwd);
}

// scripts/launch.sh [LAUNCH_FLAGS] NPROC -- ARGS in `cwd`.
inline RunResult run_launch(int nproc, const std::vector<std::string>& args, const std::string& cwd,
                            const std::string& env = "", const std::string& launch_flags = "") {
  return run_shell("cd " + shell_quote(cwd) + " && env KHSGD_TRAIN=" + shell_quote(train_binary()) +
                       " " + env + " " + shell_quote(KHSGD_LAUNCH_SCRIPT) + " " + launch_flags +
                       " " + std::to_string(nproc) + " --" + join_args(args),
                   cwd);
}

// scripts/launch.sh --mpi NPROC -- ARGS in `cwd`: the ranks started by Open MPI's mpirun.
inline RunResult run_mpirun(int nproc, const std::vector<std::string>& args, const std::string& cwd,
                            const std::string& env = "") {
  return run_launch(nproc, args, cwd, env, "--mpi");
}

// Whether this build has the mpi backend and mpirun is installed; the reason when not.
inline std::string mpi_missing() {
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) return "mpirun is not installed";
  const std::string probe = "'" KHSGD_TRAIN_BINARY "' --version | grep -q 'backends:.*mpi'";
  if (std::system(probe.c_str()) != 0) return "this build has no mpi backend";
  return "";
}

inline int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

// A CSV with a header line: column name -> values (as doubles), row by row.
struct Csv {
  std::vector<std::string> header;
  std::vector<std::vector<double>> rows;
  double at(size_t row, const std::string& column) const {
    for (size_t c = 0; c < header.size(); ++c)
      if (header[c] == column) return rows.at(row).at(c);
    throw std::runtime_error("no column " + column);
  }
};

inline std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> parts;
  std::stringstream stream(line);
  std::string part;
  while (std::getline(stream, part, sep)) parts.push_back(part);
  return parts;
}

inline Csv read_csv(const std::string& path) {
  Csv csv;
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return csv;
  csv.header = split(line, ',');
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<double> row;
    for (const auto& cell : split(line, ',')) row.push_back(std::stod(cell));
    csv.rows.push_back(row);
  }
  return csv;
}

// Lines of comma-separated integers (orders files); .gz files are read through gzip -dc.
inline std::vector<std::vector<int64_t>> read_orders(const std::string& path) {
  std::string text;
  if (path.size() > 3 && path.compare(path.size() - 3, 3, ".gz") == 0) {
    FILE* pipe = popen(("gzip -dc " + shell_quote(path)).c_str(), "r");
    if (!pipe) throw std::runtime_error("cannot run gzip");
    char buffer[1 << 16];
    size_t got;
    while ((got = fread(buffer, 1, sizeof buffer, pipe)) > 0) text.append(buffer, got);
    pclose(pipe);
  } else {
    text = read_file(path);
  }
  std::vector<std::vector<int64_t>> lines;
  std::stringstream stream(text);
  std::string line;
  while (std::getline(stream, line)) {
    std::vector<int64_t> order;
    for (const auto& cell : split(line, ',')) order.push_back(std::stoll(cell));
    lines.push_back(order);
  }
  return lines;
}

// The only entries in a folder (names), sorted; empty when it does not exist.
inline std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> names;
  FILE* pipe = popen(("ls -A " + shell_quote(path) + " 2>/dev/null").c_str(), "r");
  char line[4096];
  while (pipe && fgets(line, sizeof line, pipe)) {
    std::string name = line;
    if (!name.empty() && name.back() == '\n') name.pop_back();
    names.push_back(name);
  }
  if (pipe) pclose(pipe);
  return names;
}

// The flags of the reference's golden runs (tests/data/golden: seed 1, lr 5e-3, B 16, orders
// saved), `epochs` epochs on `device`, results under tmp/results.
inline std::vector<std::string> golden_flags(const TempDir& tmp, const std::string& sorter,
                                             int epochs, const std::string& device = "cpu") {
  // clang-format off
  return {"--sorter", sorter, "--seed", "1", "--lr", "5e-3", "--epochs", std::to_string(epochs),
          "--data_dir", test_data("golden/data"), "--results_dir", tmp / "results",
          "--save_orders", "--device", device};
  // clang-format on
}

// Where a golden-flags run with `ranks` ranks writes its results.
inline std::string golden_run_dir(const TempDir& tmp, const std::string& sorter, int ranks = 1,
                                  int epochs = 3) {
  return tmp / ("results/LR-HMDA-" + std::to_string(epochs) + "/LR-hmda-" + sorter + "-node-" +
                std::to_string(ranks) + "-lr-0.005-B-16-seed-1");
}

}  // namespace khsgd_test
