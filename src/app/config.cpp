#include "khsgd/app/config.hpp"

#include <cxxopts.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "khsgd/base/errors.hpp"
#include "khsgd/data/utf8.hpp"
#include "khsgd/sorting/sorter_registry.hpp"

namespace khsgd {

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

void require_one_of(const std::string& flag, const std::string& value,
                    const std::vector<std::string>& choices) {
  if (std::find(choices.begin(), choices.end(), value) == choices.end())
    throw UserError("--" + flag + " '" + value + "' is not one of: " + join(choices));
}

// cxxopts takes a single-letter name only as a short option ("-B"), while the reference's users
// write "--B 16" or "--B=16": rewrite those spellings before parsing.
std::vector<std::string> normalize_arguments(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (i > 0 && arg.size() >= 3 && arg.compare(0, 2, "--") == 0 &&
        (arg.size() == 3 || arg[3] == '=') && std::isalpha(static_cast<unsigned char>(arg[2]))) {
      args.push_back("-" + arg.substr(2, 1));
      if (arg.size() > 3) args.push_back(arg.substr(4));
      continue;
    }
    args.push_back(arg);
  }
  return args;
}

// cxxopts quotes names with typographic quotes; keep our messages plain ASCII.
std::string plain_quotes(std::string text) {
  for (const char* fancy : {"\xE2\x80\x98", "\xE2\x80\x99"}) {
    for (size_t at = text.find(fancy); at != std::string::npos; at = text.find(fancy))
      text.replace(at, 3, "'");
  }
  return text;
}

const char* kHelp =
    R"(khsgd_train: logistic regression on HMDA with SGD whose example order each epoch is chosen
by a sorter (Low-Rank Thinning, ICML 2025). Launch one process, or several with torchrun,
mpirun or scripts/launch.sh:
  torchrun --nproc_per_node=N --no_python khsgd_train [options]   (--no_python: torch 1.13's
      spelling, torch >= 2.0 takes both; Debian 12's torchrun also needs --redirects 1 --tee 1)
  mpirun -np N khsgd_train [options]
  scripts/launch.sh N -- [options]

Options (defaults in brackets):
  --sorter NAME        @SORTERS@ [CD-GraB]
  --list-sorters       print every sorter, "NAME<TAB>description<TAB>paper|baseline" a line,
                       and exit (with --device cuda: those that run on the GPU)
  --seed N             seed of every generator [0]
  --lr X               learning rate [0.01]
  --B N                global batch; each rank takes B / ranks examples per step [16]
  --momentum X         SGD momentum [0.9]
  --epochs N           training epochs [50]
  --node_cnt N         number of ranks; must equal the launched world size [world size]
  --in_process         run the --node_cnt ranks' shards as workers inside this one process:
                       the numbers of a real node_cnt-rank run, bit for bit (CPU)
  --backend NAME       auto, gloo, nccl or mpi; auto = nccl on cuda, mpi under mpirun on
                       cpu (when built with MPI), else gloo [auto]
  --device NAME        auto, cpu or cuda [auto]
  --dataset NAME       hmda (the .pt files in --data_dir) or synthetic (generated) [hmda]
  --data_dir DIR       folder with features-/targets-processed-NY-2017.pt [data/HMDA]
  --results_dir DIR    where run folders are written [results]
  --exp NAME           experiment name, the first folder level [LR-HMDA]
  --save_orders        write orders-rankR.csv: line e = the local order of epoch e
  --save_grads LIST    write grads-epochE.pt, the gathered per-example gradients [N', D] of
                       the listed epochs (1,5,10-12 or all); see plots/grad_spectrum.py
  --synthetic_rows N   with --dataset synthetic: N train rows (N/4 test) instead of 195285
  --quiet              no progress display
  --profile            exact per-category times in time-rankR.csv (synchronises every step)
  --checkpoint_every K also write a checkpoint after every K-th epoch (0: not by count) [0]
  --checkpoint_seconds S
                       write a checkpoint after an epoch that ends S seconds or more after
                       the last one (0: not by time) [60]; a stop by SIGTERM/SIGINT/SIGHUP always
                       writes one
  --resume             continue an unfinished run from its checkpoint
  --overwrite          replace the results of an earlier run in the same folder
  --timeout S          seconds after which a lost or silent rank stops the others [300]
  --local_rank N       accepted for launcher compatibility (LOCAL_RANK wins)
  --version            this build's version, LibTorch, CUDA support and backends
  --print_run_dir      print the run folder these flags write to (for scripts) and exit
  --print_run_state    print what that folder holds for these flags (for scripts) and exit:
                       new, finished, resumable or unfinished; exit 2 naming the first flag
                       that differs when it holds a run with other flags
  -h, --help           this text

SIGTERM, SIGINT (Ctrl-C) or SIGHUP stops the run cleanly at the end of the current epoch, with
a checkpoint; a second Ctrl-C exits at once (not under --backend mpi: mpirun ends the ranks).
Exit status: 0 done, 1 a failed write, 2 bad input (nothing written), 3 a lost or unreachable
peer, 130 / 143 / 129 stopped by SIGINT / SIGTERM / SIGHUP (--resume continues).

Results: RESULTS_DIR/EXP-EPOCHS/LR-hmda-SORTER-node-N-lr-LR-B-B-seed-SEED/ with metrics.csv,
config.json, and the reference's results.pt and time/time-R.pt (LR-synthetic-... for
--dataset synthetic).
)";

// kHelp with the registry's sorter names in place of @SORTERS@.
std::string help_text() {
  const std::vector<std::string> names = sorter_names();
  std::string list;
  for (size_t i = 0; i < names.size(); ++i)
    list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  std::string text = kHelp;
  const std::string marker = "@SORTERS@";
  text.replace(text.find(marker), marker.size(), list);
  return text;
}

}  // namespace

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // Shortest decimal digits that read back as the same double, as Python's repr() finds them.
  char buffer[64];
  int precision = 1;
  for (; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof buffer, "%.*e", precision - 1, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  std::string text = buffer;
  std::string sign;
  if (text[0] == '-') {
    sign = "-";
    text.erase(0, 1);
  }
  const size_t e_at = text.find('e');
  const int exponent = std::atoi(text.c_str() + e_at + 1);
  std::string digits = text.substr(0, e_at);
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  if (value == 0.0) return sign + "0.0";
  const int point = exponent + 1;  // position of the decimal point relative to the digits
  if (point > -4 && point <= 16) {
    if (point <= 0) return sign + "0." + std::string(-point, '0') + digits;
    if (point >= static_cast<int>(digits.size()))
      return sign + digits + std::string(point - digits.size(), '0') + ".0";
    return sign + digits.substr(0, point) + "." + digits.substr(point);
  }
  std::string mantissa = digits.substr(0, 1);
  if (digits.size() > 1) mantissa += "." + digits.substr(1);
  const int e = point - 1;
  char exp_text[16];
  std::snprintf(exp_text, sizeof exp_text, "e%c%02d", e < 0 ? '-' : '+', std::abs(e));
  return sign + mantissa + exp_text;
}

namespace {

cxxopts::Options declare_options() {
  cxxopts::Options options("khsgd_train");
  // Values are read as strings and checked by FlagReader, so that every message names the flag.
  // clang-format off
  const char* const valued[] = {"sorter", "seed", "lr", "B", "momentum", "epochs", "node_cnt",
                                "backend", "exp", "local_rank,local-rank", "device", "data_dir",
                                "results_dir", "dataset", "save_grads", "synthetic_rows",
                                "checkpoint_every", "checkpoint_seconds", "timeout"};
  const char* const switches[] = {"in_process", "save_orders", "quiet", "profile", "resume",
                                  "overwrite"};
  const char* const actions[] = {"version", "list-sorters,list_sorters", "print_run_dir",
                                 "print_run_state", "h,help"};
  // clang-format on
  auto add = options.add_options();
  for (const char* name : valued) add(name, "", cxxopts::value<std::string>());
  for (const char* name : switches) add(name, "", cxxopts::value<bool>());
  for (const char* name : actions) add(name, "");
  return options;
}

// Checked values out of cxxopts' result: each setter leaves the default when the flag is absent
// and throws UserError naming the flag when its value is malformed or out of range.
class FlagReader {
 public:
  explicit FlagReader(const cxxopts::ParseResult& result) : result_(result) {}

  bool given(const char* flag) const { return result_.count(flag) > 0; }

  void text(const char* flag, std::string* out) const {
    if (given(flag)) *out = result_[flag].as<std::string>();
  }

  void choice(const char* flag, std::string* out, const std::vector<std::string>& choices) const {
    text(flag, out);
    require_one_of(flag, *out, choices);
  }

  void on_off(const char* flag, bool* out) const {
    if (given(flag)) *out = result_[flag].as<bool>();
  }

  void integer(const char* flag, int64_t* out, int64_t lo, int64_t hi) const {
    if (!given(flag)) return;
    const std::string value = result_[flag].as<std::string>();
    char* end = nullptr;
    errno = 0;
    const long long parsed = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || errno == ERANGE || parsed < lo || parsed > hi) {
      std::ostringstream msg;
      msg << "--" << flag << " '" << value << "' must be an integer in [" << lo << ", " << hi
          << "]";
      throw UserError(msg.str());
    }
    *out = parsed;
  }

  void real(const char* flag, double* out, const char* what, bool (*ok)(double)) const {
    if (!given(flag)) return;
    const std::string value = result_[flag].as<std::string>();
    char* end = nullptr;
    const double parsed = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(parsed) || !ok(parsed))
      throw UserError("--" + std::string(flag) + " '" + value + "' must be " + what);
    *out = parsed;
  }

 private:
  const cxxopts::ParseResult& result_;
};

// What the run computes: the reference's flags.
void read_training_flags(const FlagReader& flags, Config& c) {
  flags.choice("sorter", &c.sorter, sorter_names());
  flags.integer("seed", &c.seed, 0, INT64_MAX);
  flags.real("lr", &c.lr, "a finite number > 0", [](double x) { return x > 0; });
  flags.integer("B", &c.B, 1, 1 << 20);
  flags.real("momentum", &c.momentum, "a finite number in [0, 1]",
             [](double x) { return x >= 0 && x <= 1; });
  flags.integer("epochs", &c.epochs, 1, 100000);
  flags.integer("node_cnt", &c.node_cnt, 1, 1 << 16);
  flags.on_off("in_process", &c.in_process);
  flags.choice("backend", &c.backend, {"auto", "gloo", "nccl", "mpi"});
  flags.text("local_rank", &c.local_rank);
  flags.choice("device", &c.device, {"auto", "cpu", "cuda"});
}

// Where the data comes from and what the run writes.
void read_data_and_output_flags(const FlagReader& flags, Config& c) {
  flags.text("exp", &c.exp);
  if (c.exp.empty() || c.exp.find('/') != std::string::npos)
    throw UserError("--exp '" + c.exp + "' must be a non-empty name without '/'");
  flags.text("data_dir", &c.data_dir);
  flags.text("results_dir", &c.results_dir);
  if (c.results_dir.empty()) throw UserError("--results_dir must not be empty");
  // They are written into config.json, which (JSON) holds Unicode text only.
  for (const auto& [flag, value] : {std::pair<const char*, const std::string*>{"exp", &c.exp},
                                    {"data_dir", &c.data_dir},
                                    {"results_dir", &c.results_dir}})
    if (!is_utf8(*value))
      throw UserError("--" + std::string(flag) +
                      " is not valid UTF-8; use a name in UTF-8 (config.json records it)");
  flags.choice("dataset", &c.dataset, {"hmda", "synthetic"});
  flags.on_off("save_orders", &c.save_orders);
  std::string grads;
  flags.text("save_grads", &grads);
  if (flags.given("save_grads")) c.save_grads = parse_epoch_list(grads, c.epochs);
  flags.integer("synthetic_rows", &c.synthetic_rows, 32, int64_t{1} << 30);
  if (c.synthetic_rows && c.dataset != "synthetic")
    throw UserError("--synthetic_rows applies to --dataset synthetic only");
  flags.on_off("quiet", &c.quiet);
  flags.on_off("profile", &c.profile);
}

// How the run survives: checkpoints, resuming, lost ranks.
void read_reliability_flags(const FlagReader& flags, Config& c) {
  flags.integer("checkpoint_every", &c.checkpoint_every, 0, 100000);
  flags.real("checkpoint_seconds", &c.checkpoint_seconds, "a finite number of seconds >= 0",
             [](double x) { return x >= 0; });
  flags.on_off("resume", &c.resume);
  flags.on_off("overwrite", &c.overwrite);
  if (c.resume && c.overwrite)
    throw UserError("--resume and --overwrite contradict each other: pick one");
  flags.integer("timeout", &c.timeout, 1, 7 * 24 * 3600);
}

}  // namespace

bool parse_command_line(int argc, const char* const* argv, Config* config, std::string* help) {
  cxxopts::Options options = declare_options();
  const std::vector<std::string> args = normalize_arguments(argc, argv);
  std::vector<const char*> arg_ptrs;
  arg_ptrs.reserve(args.size());
  for (const auto& a : args) arg_ptrs.push_back(a.c_str());

  cxxopts::ParseResult result;
  try {
    result = options.parse(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
  } catch (const cxxopts::exceptions::exception& e) {
    throw UserError(plain_quotes(e.what()) + " (see khsgd_train --help)");
  }
  if (!result.unmatched().empty())
    throw UserError("unexpected argument '" + result.unmatched().front() +
                    "': every setting is a --flag (see khsgd_train --help)");
  if (result.count("help")) {
    *help = help_text();
    return false;
  }
  config->version = result.count("version") > 0;
  config->list_sorters = result.count("list-sorters") > 0;
  config->print_run_dir = result.count("print_run_dir") > 0;
  config->print_run_state = result.count("print_run_state") > 0;
  const FlagReader flags(result);
  read_training_flags(flags, *config);
  read_data_and_output_flags(flags, *config);
  read_reliability_flags(flags, *config);
  return true;
}

std::vector<int64_t> parse_epoch_list(const std::string& text, int64_t epochs) {
  std::vector<int64_t> list;
  auto bad = [&](const std::string& why) {
    return UserError("--save_grads '" + text + "': " + why +
                     " (expected epochs like 1,5,10-12 or 'all', within 1.." +
                     std::to_string(epochs) + ")");
  };
  if (text == "all") {
    for (int64_t e = 1; e <= epochs; ++e) list.push_back(e);
    return list;
  }
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = text.find(',', at);
    const std::string item =
        text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    const size_t dash = item.find('-');
    auto number = [&](const std::string& digits) {
      if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos ||
          digits.size() > 9)
        throw bad("'" + item + "' is not an epoch");
      return static_cast<int64_t>(std::stoll(digits));
    };
    const int64_t first = number(item.substr(0, dash));
    const int64_t last = dash == std::string::npos ? first : number(item.substr(dash + 1));
    if (first < 1 || last > epochs || first > last) throw bad("'" + item + "' is out of range");
    for (int64_t e = first; e <= last; ++e) list.push_back(e);
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  std::sort(list.begin(), list.end());
  list.erase(std::unique(list.begin(), list.end()), list.end());
  return list;
}

std::vector<FlagSetting> behaviour_flags(const Config& c) {
  auto real = [](double value) {
    char text[40];
    std::snprintf(text, sizeof text, "%.17g", value);
    return std::string(text);
  };
  auto flag = [](bool on) { return std::string(on ? "on" : "off"); };
  return {
      {"sorter", c.sorter, true},
      {"seed", std::to_string(c.seed), true},
      {"lr", real(c.lr), true},
      {"B", std::to_string(c.B), true},
      {"momentum", real(c.momentum), true},
      {"epochs", std::to_string(c.epochs), true},
      {"node_cnt", std::to_string(c.node_cnt), true},
      {"in_process", flag(c.in_process), true},
      {"backend", c.backend, true},
      {"exp", c.exp, true},
      {"device", c.device, true},
      {"dataset", c.dataset, true},
      {"synthetic_rows", std::to_string(c.synthetic_rows), true},
      {"save_orders", flag(c.save_orders), true},
      {"results_dir", c.results_dir, false},
      {"save_grads", epoch_list_text(c.save_grads), false},
      {"profile", flag(c.profile), false},
      {"checkpoint_every", std::to_string(c.checkpoint_every), false},
      {"checkpoint_seconds", real(c.checkpoint_seconds), false},
      {"resume", flag(c.resume), false},
      {"overwrite", flag(c.overwrite), false},
      {"timeout", std::to_string(c.timeout), false},
  };
}

std::string epoch_list_text(const std::vector<int64_t>& epochs) {
  std::string text;
  for (int64_t e : epochs) text += (text.empty() ? "" : ",") + std::to_string(e);
  return text;
}

void check_against_world(Config* config, int world_size) {
  Config& c = *config;
  if (c.in_process) {
    if (c.node_cnt == 0)
      throw UserError(
          "--in_process needs --node_cnt N: the number of workers to run in this process");
    if (world_size != 1)
      throw UserError("--in_process runs every worker in one process, but " +
                      std::to_string(world_size) + " ranks were launched; start one process");
    if (c.backend != "auto")
      throw UserError("--in_process runs every worker in one process: it takes no --backend");
    if (c.device == "cuda")
      throw UserError("--in_process runs on the CPU engine; use --device cpu (or auto)");
  }
  if (c.node_cnt == 0) c.node_cnt = world_size;
  if (!c.in_process && c.node_cnt != world_size)
    throw UserError("--node_cnt " + std::to_string(c.node_cnt) + " does not match the " +
                    std::to_string(world_size) +
                    " launched rank(s); launch --node_cnt processes, drop the flag, or add "
                    "--in_process to run them inside this process");
  const int64_t workers = c.node_cnt;
  const std::string what = c.in_process ? " worker(s)" : " rank(s)";
  if (c.B % workers != 0)
    throw UserError("--B " + std::to_string(c.B) + " is not divisible by the " +
                    std::to_string(workers) + what + ": each takes B / " +
                    (c.in_process ? "workers" : "ranks") + " examples");
  const int64_t microbatch = c.B / workers;
  // The shard size m is a multiple of an even number of steps (ALGORITHM.md §1): only the
  // microbatch can be odd.
  if (!shape_problem(sorter_info(c.sorter), microbatch, 2 * microbatch).empty())
    throw UserError("--sorter " + c.sorter + " balances pairs, so B / " +
                    (c.in_process ? "workers" : "ranks") + " must be even; got B " +
                    std::to_string(c.B) + " over " + std::to_string(workers) + what + " = " +
                    std::to_string(microbatch));
}

}  // namespace khsgd
