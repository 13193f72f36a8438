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

// --backend auto: nccl on cuda; on the CPU mpi when mpirun started the ranks (and this build has
// it), else gloo.
std::string auto_backend(Device device, const Launch& launch) {
  if (device == Device::Cuda) return "nccl";
  return has_mpi() && launch.launcher == "mpirun" ? "mpi" : "gloo";
}

// mpi: in this build, host memory, and (to connect) ranks that mpirun started.
void refuse_unfit_mpi(Device device, const Launch& launch, bool connects) {
  if (!has_mpi())
    throw UserError(
        "--backend mpi is not available in this build (it needs Open MPI's "
        "libopenmpi-dev at build time); use --backend gloo");
  if (device != Device::Cpu)
    throw UserError(
        "--backend mpi moves host memory only; use it with --device cpu, or --backend "
        "nccl on cuda");
  if (connects && launch.launcher != "mpirun")
    throw UserError(
        "--backend mpi needs ranks started by mpirun (mpirun -np N khsgd_train ...), "
        "not by " +
        launch.launcher + "; use --backend gloo");
}

// nccl: GPU memory, and one GPU per rank (NCCL refuses two ranks on one GPU; say so before anyone
// waits for it).
void refuse_unfit_nccl(Device device, const Launch& launch, int gpus) {
  if (device != Device::Cuda)
    throw UserError(
        "--backend nccl moves GPU memory and needs --device cuda; use --backend gloo "
        "for CPU training");
  const int local_ranks = std::max(launch.local_world_size, launch.local_rank + 1);
  if (launch.world_size > 1 && local_ranks > gpus)
    throw UserError("--backend nccl needs one GPU per rank, but this machine runs " +
                    std::to_string(local_ranks) + " ranks on " + std::to_string(gpus) +
                    " GPU(s); use --backend gloo to run several ranks per GPU");
}

// A c10d backend (gloo, nccl) this build has.
void refuse_missing_c10d(const std::string& name) {
  const auto c10d = c10d_backends();
  if (std::find(c10d.begin(), c10d.end(), name) == c10d.end())
    throw UserError(
        "--backend " + name + " is not available in this build" +
        (name == "nccl" ? " (it needs LibTorch with CUDA and NCCL); use --backend gloo" : ""));
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
  backend.name = requested == "auto" ? auto_backend(device, launch) : requested;
  if (backend.name == "mpi") {
    backend.connects = launch.world_size > 1;
    refuse_unfit_mpi(device, launch, backend.connects);
    return backend;
  }
  if (backend.name == "nccl") refuse_unfit_nccl(device, launch, gpus);
  backend.connects = launch.world_size > 1 || requested == "nccl";
  if (backend.connects) refuse_missing_c10d(backend.name);
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
