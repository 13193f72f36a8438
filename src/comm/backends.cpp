#include "khsgd/comm/backends.hpp"

#include <algorithm>
#include <string>

#include "khsgd/base/errors.hpp"
#ifdef KHSGD_WITH_MPI
#include "khsgd/comm/mpi_comm.hpp"
#endif

namespace khsgd {

namespace {

bool has_mpi() {
#ifdef KHSGD_WITH_MPI
  return true;
#else
  return false;
#endif
}

}  // namespace

std::vector<std::string> available_backends() {
  std::vector<std::string> backends = c10d_backends();
  if (has_mpi()) backends.push_back("mpi");
  return backends;
}

Backend resolve_backend(const std::string& requested, Device device, const Launch& launch,
                        int gpus) {
  Backend backend;
  if (requested != "auto")
    backend.name = requested;
  else if (device == Device::Cuda)
    backend.name = "nccl";
  else
    backend.name = has_mpi() && launch.launcher == "mpirun" ? "mpi" : "gloo";

  if (backend.name == "mpi") {
    if (!has_mpi())
      throw UserError(
          "--backend mpi is not available in this build (it needs Open MPI's "
          "libopenmpi-dev at build time); use --backend gloo");
    if (device != Device::Cpu)
      throw UserError(
          "--backend mpi moves host memory only; use it with --device cpu, or --backend "
          "nccl on cuda");
    backend.connects = launch.world_size > 1;
    if (backend.connects && launch.launcher != "mpirun")
      throw UserError(
          "--backend mpi needs ranks started by mpirun (mpirun -np N khsgd_train ...), "
          "not by " +
          launch.launcher + "; use --backend gloo");
    return backend;
  }

  if (backend.name == "nccl") {
    if (device != Device::Cuda)
      throw UserError(
          "--backend nccl moves GPU memory and needs --device cuda; use --backend gloo "
          "for CPU training");
    // NCCL refuses two ranks on one GPU; say so before anyone waits for it.
    const int local_ranks = std::max(launch.local_world_size, launch.local_rank + 1);
    if (launch.world_size > 1 && local_ranks > gpus)
      throw UserError("--backend nccl needs one GPU per rank, but this machine runs " +
                      std::to_string(local_ranks) + " ranks on " + std::to_string(gpus) +
                      " GPU(s); use --backend gloo to run several ranks per GPU");
  }
  backend.connects = launch.world_size > 1 || requested == "nccl";
  const auto c10d = c10d_backends();
  if (backend.connects && std::find(c10d.begin(), c10d.end(), backend.name) == c10d.end())
    throw UserError("--backend " + backend.name + " is not available in this build" +
                    (backend.name == "nccl"
                         ? " (it needs LibTorch with CUDA and NCCL); use --backend gloo"
                         : ""));
  return backend;
}

std::unique_ptr<Communicator> open_communicator(const Launch& launch, const Backend& backend,
                                                int cuda_device,
                                                std::chrono::milliseconds timeout) {
  if (!backend.connects) return make_solo_communicator();
  if (backend.name != "mpi")
    return connect_process_group(launch, backend.name, cuda_device, timeout);
#ifdef KHSGD_WITH_MPI
  return connect_mpi(launch, timeout);
#else
  throw UserError("--backend mpi is not available in this build");
#endif
}

}  // namespace khsgd
