#include "khsgd/app/launch.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "khsgd/base/cores.hpp"
#include "khsgd/base/errors.hpp"

namespace khsgd {

namespace {

int read_int(const EnvLookup& env, const char* name, int lo, int hi) {
  const char* raw = env(name);
  const std::string value = raw ? raw : "";
  char* end = nullptr;
  errno = 0;
  const long parsed = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno == ERANGE || parsed < lo || parsed > hi)
    throw UserError("environment variable " + std::string(name) + "='" + value +
                    "' must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                    "]");
  return static_cast<int>(parsed);
}

bool has(const EnvLookup& env, const char* name) {
  const char* value = env(name);
  return value != nullptr && value[0] != '\0';
}

}  // namespace

Launch detect_launch(const EnvLookup& env) {
  Launch launch;
  const int kMaxRanks = 1 << 16;
  if (has(env, "WORLD_SIZE") || has(env, "RANK")) {
    launch.launcher = "torchrun";
    launch.world_size = read_int(env, "WORLD_SIZE", 1, kMaxRanks);
    launch.rank = read_int(env, "RANK", 0, launch.world_size - 1);
    launch.local_rank = has(env, "LOCAL_RANK") ? read_int(env, "LOCAL_RANK", 0, kMaxRanks) : 0;
    launch.local_world_size = has(env, "LOCAL_WORLD_SIZE")
                                  ? read_int(env, "LOCAL_WORLD_SIZE", 1, kMaxRanks)
                                  : launch.local_rank + 1;
  } else if (has(env, "OMPI_COMM_WORLD_SIZE")) {
    launch.launcher = "mpirun";
    launch.world_size = read_int(env, "OMPI_COMM_WORLD_SIZE", 1, kMaxRanks);
    launch.rank = read_int(env, "OMPI_COMM_WORLD_RANK", 0, launch.world_size - 1);
    launch.local_rank = has(env, "OMPI_COMM_WORLD_LOCAL_RANK")
                            ? read_int(env, "OMPI_COMM_WORLD_LOCAL_RANK", 0, kMaxRanks)
                            : 0;
    launch.local_world_size = has(env, "OMPI_COMM_WORLD_LOCAL_SIZE")
                                  ? read_int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", 1, kMaxRanks)
                                  : launch.local_rank + 1;
  } else {
    return launch;  // one plain process
  }
  if (launch.local_rank >= launch.local_world_size)
    throw UserError("the local rank " + std::to_string(launch.local_rank) +
                    " is not below the local world size " +
                    std::to_string(launch.local_world_size));
  if (has(env, "MASTER_ADDR")) launch.master_addr = env("MASTER_ADDR");
  if (has(env, "MASTER_PORT")) launch.master_port = read_int(env, "MASTER_PORT", 1, 65535);
  const char* agent = env("TORCHELASTIC_USE_AGENT_STORE");
  if (agent != nullptr && std::string(agent) == "True") {
    launch.agent_store = true;
    const char* restarts = env("TORCHELASTIC_RESTART_COUNT");
    launch.store_prefix =
        std::string("/worker/attempt_") + (restarts && restarts[0] ? restarts : "0");
  }
  return launch;
}

int rank_threads(const Launch& launch, const EnvLookup& env, int allowed_cores) {
  // The ranks that share this machine's cores; a launcher that does not say (RANK and WORLD_SIZE
  // alone) may have started them all here.
  const bool local_size_known = launch.launcher == "single" || has(env, "LOCAL_WORLD_SIZE") ||
                                has(env, "OMPI_COMM_WORLD_LOCAL_SIZE");
  const int ranks_here = local_size_known ? launch.local_world_size : launch.world_size;
  int threads = std::clamp(allowed_cores / std::max(ranks_here, 1), 1, 8);
  if (has(env, "OMP_NUM_THREADS")) {
    // OpenMP's form: a positive integer, or a comma-separated list of them (nested levels); the
    // first caps this rank.
    const std::string value = env("OMP_NUM_THREADS");
    long cap = 0;
    bool well_formed = true;
    size_t from = 0;
    for (bool first = true; well_formed; first = false) {
      const size_t comma = value.find(',', from);
      const std::string item =
          value.substr(from, comma == std::string::npos ? comma : comma - from);
      well_formed = !item.empty() && item.size() <= 9 &&
                    item.find_first_not_of("0123456789") == std::string::npos &&
                    std::stol(item) > 0;
      if (well_formed && first) cap = std::stol(item);
      if (comma == std::string::npos) break;
      from = comma + 1;
    }
    if (!well_formed)
      throw UserError("environment variable OMP_NUM_THREADS='" + value +
                      "' must be a positive integer (or a comma-separated list of them)");
    threads = static_cast<int>(std::min<long>(threads, cap));
  }
  return threads;
}

int rank_threads(const Launch& launch) {
  return rank_threads(
      launch, [](const char* name) { return std::getenv(name); }, allowed_cores());
}

std::string this_host() {
  char name[256] = {0};
  ::gethostname(name, sizeof name - 1);
  return name;
}

Launch detect_launch() {
  return detect_launch([](const char* name) -> const char* { return std::getenv(name); });
}

}  // namespace khsgd
