#include "khsgd/sorting/sorter_registry.hpp"

#include <stdexcept>

#include "khsgd/base/errors.hpp"

namespace khsgd {

// Each sorter's entry, defined in its own source file: sorters.cpp holds the paper's four,
// sorter_grab.cpp GraB and I-B (GraB per rank), sorter_NAME.cpp the others.
SorterInfo drr_sorter();
SorterInfo cd_grab_sorter();
SorterInfo sbw_sorter();
SorterInfo kh_sgd_sorter();
SorterInfo grab_sorter();
SorterInfo independent_balance_sorter();
SorterInfo shuffle_once_sorter();
SorterInfo fixed_order_sorter();

const std::vector<SorterInfo>& sorter_registry() {
  // The paper's four first, in its order (Low-Rank Thinning, Figure 4), then the baselines.
  // One line per sorter.
  // clang-format off
  static const std::vector<SorterInfo> sorters = {
      drr_sorter(),
      cd_grab_sorter(),
      sbw_sorter(),
      kh_sgd_sorter(),
      grab_sorter(),
      independent_balance_sorter(),
      shuffle_once_sorter(),
      fixed_order_sorter(),
  };
  // clang-format on
  return sorters;
}

std::vector<std::string> sorter_names() {
  std::vector<std::string> names;
  for (const SorterInfo& info : sorter_registry()) names.emplace_back(info.name);
  return names;
}

const SorterInfo& sorter_info(const std::string& name) {
  for (const SorterInfo& info : sorter_registry())
    if (name == info.name) return info;
  std::string names;
  for (const SorterInfo& info : sorter_registry())
    names += (names.empty() ? "" : ", ") + std::string(info.name);
  throw UserError("unknown sorter '" + name + "' (one of: " + names + ")");
}

std::string sorter_list(bool cuda_only) {
  std::string text;
  for (const SorterInfo& info : sorter_registry())
    if (!cuda_only || info.cuda != nullptr)
      text += std::string(info.name) + "\t" + info.description + "\t" +
              (info.paper ? "paper" : "baseline") + "\n";
  return text;
}

std::string shape_problem(const SorterInfo& info, int64_t microbatch, int64_t shard_rows) {
  if (info.even_microbatch && (microbatch % 2 != 0 || shard_rows % 2 != 0))
    return std::string(info.name) +
           " balances pairs, so every rank's examples per step (and per epoch) must be even";
  return "";
}

std::unique_ptr<Sorter> make_sorter(const std::string& name, const SorterShape& shape,
                                    DeviceOps& ops) {
  const SorterInfo& info = sorter_info(name);
  const std::string problem = shape_problem(info, shape.microbatch, shape.shard_rows);
  if (!problem.empty()) throw UserError(problem);
  const bool cuda = shape.device == Device::Cuda;
  if (cuda && info.cuda == nullptr)
    throw UserError("--sorter " + name +
                    " runs on the CPU only; use --device cpu (--device auto picks it)");
  std::unique_ptr<Sorter> sorter = (cuda ? info.cuda : info.host)(shape, ops);
  // The engines act on needs(): an entry that says otherwise is a bug in the table.
  if (sorter->needs() != info.needs)
    throw std::logic_error("sorter " + name + ": needs() differs from its registry entry");
  return sorter;
}

}  // namespace khsgd
