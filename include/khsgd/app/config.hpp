// Settings of one training run and the command line that sets them.
//
// Flag names and defaults follow the published main-LR-HMDA.py so that its launch lines work
// unchanged; the flags the reference lacks are documented in README.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace khsgd {

struct Config {
  std::string sorter = "CD-GraB";  // a name in sorter_registry.hpp's table
  int64_t seed = 0;
  double lr = 1e-2;
  int64_t B = 16;  // global batch: every rank takes B / world_size examples per step
  double momentum = 0.9;
  int64_t epochs = 50;
  int64_t node_cnt = 0;          // 0 = not given: the world size
  bool in_process = false;       // run all node_cnt workers' shards inside this one process
  std::string backend = "auto";  // auto = nccl on cuda; on cpu mpi under mpirun, else gloo
  std::string exp = "LR-HMDA";
  std::string local_rank;       // accepted for launcher compatibility; LOCAL_RANK wins
  std::string device = "auto";  // auto = cuda when this build and machine have one
  std::string data_dir = "data/HMDA";
  std::string results_dir = "results";
  std::string dataset = "hmda";  // hmda (files in data_dir) or synthetic (generated in-process)
  bool save_orders = false;
  std::vector<int64_t> save_grads;  // epochs whose gathered per-example gradients are saved
  int64_t synthetic_rows = 0;       // 0: the full HMDA shape; else train rows (test: a quarter)
  bool quiet = false;               // no progress display
  bool profile = false;             // exact per-category times (synchronises every step)
  int64_t checkpoint_every = 0;     // a checkpoint every K epochs; 0: not by count
  double checkpoint_seconds =
      60;                      // a checkpoint when S seconds passed since the last; 0: not by time
  bool resume = false;         // continue an unfinished run from its checkpoint
  bool overwrite = false;      // replace whatever the run folder holds
  int64_t timeout = 300;       // seconds before a lost or silent rank stops the others
  bool version = false;        // --version: print what this build can do and exit
  bool list_sorters = false;   // --list-sorters: print the sorters' names and descriptions, exit
  bool print_run_dir = false;  // print the run folder these flags write to and exit
  bool print_run_state = false;  // print what that folder holds for these flags and exit
};

// "1,5,10-12" or "all" -> the epochs listed (sorted, unique), each in [1, epochs]. Throws
// UserError.
std::vector<int64_t> parse_epoch_list(const std::string& text, int64_t epochs);
// The inverse, for config.json and the start agreement: "1,5,10,11,12".
std::string epoch_list_text(const std::vector<int64_t>& epochs);

// Parses argv. Returns false when --help was asked for (help text in *help). Throws UserError with
// one line naming the offending flag for anything malformed or out of range.
bool parse_command_line(int argc, const char* const* argv, Config* config, std::string* help);

// Checks what depends on the launch: --node_cnt against the world size (with --in_process: one
// process, --node_cnt workers in it) and --B against the workers. Fills node_cnt when it was not
// given. Throws UserError.
void check_against_world(Config* config, int world_size);

// One flag as the ranks compare it before they start: its name and its value as text.
struct FlagSetting {
  const char* flag;
  std::string value;
  // Part of the run's identity: a checkpoint resumes only a run equal in these (not --resume,
  // --overwrite, --timeout and the other flags that change how a run goes, not what it computes).
  bool shapes_results;
};

// Every flag that changes what a run does, in a fixed order. Not --local_rank (it differs per
// rank by design), --data_dir (the data itself is compared) or --version/--help.
std::vector<FlagSetting> behaviour_flags(const Config& config);

// Python's repr() of a float ("0.005", "1e-05"), as the reference writes --lr into folder names.
std::string python_float_repr(double value);

}  // namespace khsgd
