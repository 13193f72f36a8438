// The MPI backend: a Communicator on the MPI C API (Open MPI), for ranks started by mpirun.
//
// Debian's LibTorch has no ProcessGroupMPI, so this is our own, on plain host buffers; it does not
// include LibTorch. A collective costs about a microsecond between two local ranks, where c10d's
// Gloo costs about 0.8 ms: several ranks then train at nearly one rank's speed.
//
// MPI_Init runs only here, when a run launched by mpirun opens the mpi backend: a plain process
// never needs MPI. MPI_Finalize runs when the communicator is destroyed after a finished run; a
// run that fails leaves with _Exit, and mpirun then ends the other ranks (docs/OPERATIONS.md "A
// lost rank").
#pragma once

#include <chrono>
#include <memory>

#include "khsgd/app/launch.hpp"
#include "khsgd/comm/comm.hpp"

namespace khsgd {

// Initialises MPI and checks that MPI's rank and size are those of `launch` (mpirun's
// environment). Errors are returned, not fatal (MPI_ERRORS_RETURN). Every rank beats into a
// heartbeat store served by rank 0, so that a failed or silent collective names the lost rank;
// a collective still waiting after `timeout` ends the process with one line and status 3.
// Throws CommError when MPI cannot start or the heartbeat cannot be joined.
std::unique_ptr<Communicator> connect_mpi(const Launch& launch, std::chrono::milliseconds timeout);

}  // namespace khsgd
