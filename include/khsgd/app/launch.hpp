// Who this process is in the job: read from the launcher's environment.
//
//   plain process      world size 1, rank 0
//   torchrun           RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT
//                      (TORCHELASTIC_USE_AGENT_STORE=True: the agent already serves the store)
//   Open MPI's mpirun  OMPI_COMM_WORLD_RANK / _SIZE / _LOCAL_RANK / _LOCAL_SIZE; MASTER_ADDR and
//   MASTER_PORT
//                      default to 127.0.0.1:29500
//   scripts/launch.sh  the torchrun variables
#pragma once

#include <functional>
#include <string>

namespace khsgd {

struct Launch {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size =
      1;  // ranks on this machine (LOCAL_WORLD_SIZE / OMPI_COMM_WORLD_LOCAL_SIZE)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "single";  // single, torchrun or mpirun
  // torchrun's elastic agent hosts the TCPStore on MASTER_PORT; the workers then join it as
  // clients under the prefix the agent expects instead of starting a server of their own.
  bool agent_store = false;
  std::string store_prefix;
};

using EnvLookup = std::function<const char*(const char*)>;

// Throws UserError naming the variable for malformed or inconsistent values.
Launch detect_launch(const EnvLookup& env);
Launch detect_launch();  // from the process environment

// How many threads this rank may keep busy (the sorter's walk beside the steps, the evaluation's
// share of rows): the cores its affinity allows (allowed_cores), shared among the ranks on this
// machine, at least 1 and at most 8. OMP_NUM_THREADS, when set, caps it as it caps LibTorch's
// threads (a sweep that runs several jobs side by side sets it to 1); UserError when it is not a
// positive integer (or a list of them: OpenMP's nested form, whose first is taken).
int rank_threads(const Launch& launch, const EnvLookup& env, int allowed_cores);
int rank_threads(const Launch& launch);  // this process's affinity and environment

// This machine's host name (config.json, the run lock's holder).
std::string this_host();

}  // namespace khsgd
