// Which communicator a run talks through: the backends this build has, what --backend auto
// picks, and opening the chosen one.
//
//   gloo  c10d's ProcessGroupGloo (comm.cpp): any launcher, CPU or GPU memory
//   nccl  c10d's ProcessGroupNCCL (comm.cpp): GPU memory, one GPU per rank
//   mpi   the MPI C API (mpi_comm.cpp): ranks started by mpirun, host memory
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "khsgd/app/launch.hpp"
#include "khsgd/comm/comm.hpp"

namespace khsgd {

// The backends this build can open, e.g. {"gloo", "mpi"}.
std::vector<std::string> available_backends();

// --backend as this launch and device resolve it: the one place a backend name is decided.
struct Backend {
  std::string name;  // gloo, nccl or mpi ("none" for --in_process)
  // Whether the run joins the others through it: with several ranks, and with --backend nccl even
  // alone, as the reference does under torchrun --nproc_per_node=1 (the run then really opens
  // NCCL). One rank with gloo, mpi or auto has no one to talk to.
  bool connects = false;
};

// auto: nccl on cuda; on the CPU mpi when mpirun started the ranks (and this build has it), else
// gloo. Throws UserError, before anyone waits on a peer, for a backend this build lacks or that
// cannot serve this launch and device (nccl off the GPU or with more local ranks than GPUs, mpi
// on the GPU or without mpirun). `gpus`: the GPUs this machine has.
Backend resolve_backend(const std::string& requested, Device device, const Launch& launch,
                        int gpus);

// The communicator of this rank through `backend`, joined within `timeout` (a solo one when it
// does not connect); CommError when the others cannot be reached.
std::unique_ptr<Communicator> open_communicator(const Launch& launch, const Backend& backend,
                                                int cuda_device, std::chrono::milliseconds timeout);

}  // namespace khsgd
