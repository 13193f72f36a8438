#include "khsgd/comm/backends.hpp"

#include <algorithm>

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

std::string auto_backend(Device device, const Launch& launch) {
  if (device == Device::Cuda) return "nccl";
  return has_mpi() && launch.launcher == "mpirun" ? "mpi" : "gloo";
}

std::unique_ptr<Communicator> open_communicator(const Launch& launch, const std::string& requested,
                                                const std::string& backend, Device device,
                                                int cuda_device,
                                                std::chrono::milliseconds timeout) {
  if (backend != "mpi") {
    if (!needs_process_group(launch.world_size, requested)) return make_solo_communicator();
    return connect_process_group(launch, backend, cuda_device, timeout);
  }
  if (!has_mpi())
    throw UserError(
        "--backend mpi is not available in this build (it needs Open MPI's "
        "libopenmpi-dev at build time); use --backend gloo");
  if (device != Device::Cpu)
    throw UserError(
        "--backend mpi moves host memory only; use it with --device cpu, or --backend "
        "nccl on cuda");
  if (launch.world_size == 1) return make_solo_communicator();
  if (launch.launcher != "mpirun")
    throw UserError(
        "--backend mpi needs ranks started by mpirun (mpirun -np N khsgd_train ...), "
        "not by " +
        launch.launcher + "; use --backend gloo");
#ifdef KHSGD_WITH_MPI
  return connect_mpi(launch, timeout);
#else
  throw UserError("--backend mpi is not available in this build");
#endif
}

}  // namespace khsgd
