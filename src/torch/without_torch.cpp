// The LibTorch-facing functions (torch_ops.hpp, comm.hpp's c10d ones) in khsgd_train, the binary
// that runs without LibTorch what needs none of it (trainer.hpp's run_needs_libtorch): one rank or
// --in_process workers on the CPU, every sorter but KH-SGD. Its CPU draws are cpu_generator.hpp's,
// its result files pt_stream.hpp's, in both binaries; what is left here would be LibTorch's, and a
// run that needs it goes to khsgd_train_run instead, so reaching one is a bug in that choice.
#include <torch/version.h>  // macros only: the LibTorch this build was made against

#include <cstring>
#include <stdexcept>
#include <string>

#include "khsgd/comm/comm.hpp"
#include "khsgd/torch/libtorch_log.hpp"
#include "khsgd/torch/torch_ops.hpp"

namespace khsgd {

namespace {

[[noreturn]] void not_here(const std::string& what) {
  throw std::logic_error(what +
                         " needs LibTorch, which khsgd_train does not load: this run should have "
                         "gone to khsgd_train_run (run_needs_libtorch)");
}

// One rank alone, host memory only (comm.cpp's also copies GPU memory, through LibTorch).
class HostSoloCommunicator final : public Communicator {
 public:
  int size() const override { return 1; }
  void all_reduce_sum(float*, int64_t, Device) override {}
  void all_gather(const float* local, float* gathered, int64_t count, Device where) override {
    if (where != Device::Cpu) not_here("a GPU copy");
    if (local != gathered) std::memcpy(gathered, local, static_cast<size_t>(count) * sizeof(float));
  }
  std::vector<int64_t> all_gather_value(int64_t value) override { return {value}; }
  void barrier() override {}
};

}  // namespace

std::unique_ptr<DeviceOps> make_torch_ops(Device, int) { not_here("the GPU's generator"); }
void seed_generators(uint64_t) { not_here("the GPU's generator"); }
std::vector<float> init_linear_parameters(int64_t) { not_here("LibTorch's CPU generator"); }
std::vector<uint8_t> generator_state(Device, int) { not_here("the GPU's generator"); }
void set_generator_state(Device, int, const std::vector<uint8_t>&) {
  not_here("the GPU's generator");
}
// KH-SGD's log table: LibTorch's bits without LibTorch where they are known (libtorch_log.hpp);
// run_needs_libtorch sends the runs elsewhere to khsgd_train_run.
std::vector<float> torch_cpu_log_of_multiples(double constant, int64_t count) {
  if (!libtorch_log_without_libtorch()) not_here("KH-SGD's log table");
  return libtorch_log_of_multiples(constant, count);
}
bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
std::string torch_version() { return TORCH_VERSION; }

std::unique_ptr<Communicator> make_solo_communicator() {
  return std::make_unique<HostSoloCommunicator>();
}

// None here: the answer is comm.cpp's, in khsgd_train_run. A run that would connect through c10d
// goes there (resolve_backend's refusal of a missing backend too), so khsgd_train never has to
// tell which c10d backends the build has.
std::vector<std::string> c10d_backends() { return {}; }

std::unique_ptr<Communicator> connect_process_group(const Launch&, const std::string& backend, int,
                                                    std::chrono::milliseconds) {
  not_here("--backend " + backend);
}

// comm.hpp's signature; the progress counter is never used here.
// NOLINTBEGIN(performance-unnecessary-value-param)
std::unique_ptr<PeerMonitor> start_peer_monitor(const std::string&, int, bool, int, int,
                                                std::chrono::milliseconds,
                                                std::shared_ptr<const std::atomic<int64_t>>) {
  not_here("the heartbeat store of --backend mpi");
}
// NOLINTEND(performance-unnecessary-value-param)

}  // namespace khsgd
