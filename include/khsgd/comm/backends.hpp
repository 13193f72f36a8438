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

// --backend auto: nccl on cuda; on the CPU mpi when mpirun started the ranks (and this build has
// it), else gloo.
std::string auto_backend(Device device, const Launch& launch);

// The communicator of this rank: `backend` (--backend `requested` resolved), joined within
// `timeout`; none for one rank unless it asked for nccl (needs_process_group). Throws UserError
// for a backend this build lacks or that cannot serve this launch and device, CommError when the
// others cannot be reached.
std::unique_ptr<Communicator> open_communicator(const Launch& launch, const std::string& requested,
                                                const std::string& backend, Device device,
                                                int cuda_device, std::chrono::milliseconds timeout);

}  // namespace khsgd
