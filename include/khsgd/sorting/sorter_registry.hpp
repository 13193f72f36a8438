// The sorters by name: every sorter is one entry of one table (src/sorting/sorter_registry.cpp),
// which says what it is, what it needs and how to build it. The flags (--sorter, --list-sorters,
// --help), the checks on B, the choice of device, the reference's time files and the scripts
// (through --list-sorters) all read this table; nothing else tests a sorter's name.
//
// A new sorter is one source file defining its class and a function returning its SorterInfo,
// plus one line in the table.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "khsgd/sorting/sorters.hpp"

namespace khsgd {

using SorterFactory = std::unique_ptr<Sorter> (*)(const SorterShape& shape, DeviceOps& ops);

// The order in which the reference's EventTimer first meets "dataset", "forward-backward" and
// "communication" in epoch 1, which is the key order of its time/time-R.pt (reference_files.cpp):
// D-RR all-reduces after forward-backward; the pair sorters allocate their gather buffer (timed as
// communication) before the first step.
using FirstStepLabels = std::array<const char*, 3>;
inline constexpr FirstStepLabels kReduceAfterBackward = {"dataset", "forward-backward",
                                                         "communication"};
inline constexpr FirstStepLabels kGatherBufferFirst = {"communication", "dataset",
                                                       "forward-backward"};

struct SorterInfo {
  const char* name = "";         // the --sorter value (and part of the run folder's name)
  const char* description = "";  // one line, for --list-sorters
  bool paper = false;  // one of the Low-Rank Thinning experiment's four (the sweep's default)
  GradientNeed needs = GradientNeed::None;
  bool even_microbatch = false;  // balances pairs: B / ranks and m must be even
  SorterFactory host = nullptr;  // --device cpu
  SorterFactory cuda = nullptr;  // --device cuda; nullptr: CPU only (--device auto picks cpu)
  FirstStepLabels time_labels = kReduceAfterBackward;
  // Draws KH-SGD's float32 log table (DeviceOps::log_of_multiples), torch.log's bits: its runs go
  // to khsgd_train_run, which loads LibTorch, unless khsgd_train can compute them as this build's
  // LibTorch does (libtorch_log.hpp).
  bool torch_log_table = false;
};

// Every sorter, in the order --list-sorters, --help and the scripts show them.
const std::vector<SorterInfo>& sorter_registry();
// The entry named `name`; UserError listing the names when there is none.
const SorterInfo& sorter_info(const std::string& name);
std::vector<std::string> sorter_names();

// --list-sorters: "NAME<TAB>description<TAB>paper|baseline" per line (paper: one of the paper
// experiment's four, which scripts/sweep.sh runs by default); with `cuda_only` the sorters that
// run on the GPU engine.
std::string sorter_list(bool cuda_only);

// Why `info` cannot run with `microbatch` examples per rank and step and m per rank (empty when
// it can): the one place the even-microbatch rule is written.
std::string shape_problem(const SorterInfo& info, int64_t microbatch, int64_t shard_rows);

// Builds sorter `name` for `shape` (its CUDA twin when shape.device is Device::Cuda). Draws what
// the sorter needs at construction from `ops` (ALGORITHM.md §5) and keeps `ops` for later epochs.
// UserError for an unknown name, a shape the sorter cannot take, or --device cuda for a sorter
// without a GPU implementation.
std::unique_ptr<Sorter> make_sorter(const std::string& name, const SorterShape& shape,
                                    DeviceOps& ops);

}  // namespace khsgd
