#include "khsgd/comm/comm.hpp"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <future>
#include <thread>
#include <tuple>

#include "khsgd/base/errors.hpp"
#include "khsgd/comm/heartbeat.hpp"
#include "khsgd/comm/rendezvous.hpp"
#include "khsgd/run/stop_signal.hpp"

namespace khsgd {

namespace {

using Clock = std::chrono::steady_clock;

// How long a fresh connection to MASTER_PORT is watched for bytes sent unasked.
constexpr std::chrono::milliseconds kQuietListener{150};
// How long past the deadline a join may take before its thread is given up (its own checks end
// it at the deadline).
constexpr std::chrono::milliseconds kJoinGrace{3000};

class SoloCommunicator final : public Communicator {
 public:
  int size() const override { return 1; }
  void all_reduce_sum(float*, int64_t, Device) override {}
  void all_gather(const float* local, float* gathered, int64_t count, Device where) override {
    if (local == gathered) return;
    if (where == Device::Cpu) {
      std::memcpy(gathered, local, count * sizeof(float));
    } else {
      const auto options = at::TensorOptions().dtype(at::kFloat).device(at::kCUDA);
      at::from_blob(gathered, {count}, options)
          .copy_(at::from_blob(const_cast<float*>(local), {count}, options));
    }
  }
  std::vector<int64_t> all_gather_value(int64_t value) override { return {value}; }
  void barrier() override {}
};

std::string first_line(const std::string& text) {
  const size_t end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

bool is_loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

// The address of this machine's interface that routes to `host`: a UDP socket "connected" to it
// sends nothing but lets the kernel pick the source address. Gloo binds there, so ranks on other
// hosts can reach it; "" when it cannot be told.
std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0 || !found)
    return "";
  std::string address;
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
    sockaddr_in local{};
    socklen_t length = sizeof local;
    char text[INET_ADDRSTRLEN] = {0};
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length) == 0 &&
        inet_ntop(AF_INET, &local.sin_addr, text, sizeof text))
      address = text;
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(found);
  return address;
}

// The heartbeats' counters (heartbeat.hpp) in the job's c10d store.
class StoreCounters final : public CounterStore {
 public:
  explicit StoreCounters(c10::intrusive_ptr<c10d::Store> store) : store_(std::move(store)) {}
  int64_t add(const std::string& key, int64_t delta) override { return store_->add(key, delta); }

 private:
  c10::intrusive_ptr<c10d::Store> store_;
};

class StorePeerMonitor final : public PeerMonitor {
 public:
  StorePeerMonitor(c10::intrusive_ptr<c10d::TCPStore> store, int rank, int size,
                   std::shared_ptr<const std::atomic<int64_t>> progress)
      : port_(store->getPort()),
        heartbeat_(std::make_shared<StoreCounters>(std::move(store)), rank, size,
                   std::move(progress)) {}
  std::string diagnose() override { return heartbeat_.diagnose(); }
  int port() const override { return port_; }

 private:
  int port_;
  Heartbeat heartbeat_;
};

// ProcessGroupGloo or ProcessGroupNCCL behind the Communicator interface. Host buffers are wrapped
// once as tensors and the wrappers reused, so a step's collective costs what c10d costs. A
// template because LibTorch 1.13 derives the groups from c10d::ProcessGroup and 2.x from
// c10d::Backend; both have the same collective methods.
template <typename Group>
class ProcessGroupCommunicator final : public Communicator {
 public:
  ProcessGroupCommunicator(c10::intrusive_ptr<Group> group, c10::intrusive_ptr<c10d::Store> store,
                           std::string backend, int rank, int size, int cuda_device)
      : group_(std::move(group)),
        backend_(std::move(backend)),
        rank_(rank),
        size_(size),
        cuda_device_(cuda_device),
        heartbeat_(std::make_unique<Heartbeat>(std::make_shared<StoreCounters>(std::move(store)),
                                               rank, size, progress_)) {}

  ~ProcessGroupCommunicator() override {
    if (std::uncaught_exceptions() > 0) {
      // On the way to an error exit (main() leaves with _Exit): a peer may be stopped rather than
      // dead, and the heartbeat's store calls and the group's teardown would wait for it up to
      // --timeout before the error line is printed. Neither is waited for (as in mpi_comm.cpp).
      (void)heartbeat_.release();
      (void)group_.release();
    }
  }

  int size() const override { return size_; }

  void all_reduce_sum(float* data, int64_t count, Device where) override {
    if (backend_ == "gloo" && count <= kSmallReduce && where == Device::Cpu) {
      // ALGORITHM.md §6. Gloo's ring all-reduce takes 2 (n - 1) dependent rounds; an all-gather
      // takes n - 1, and for D-RR's 21 floats a step waits on latency, not bandwidth. The sum is
      // then taken in rank order on every rank (for two ranks a + b, bit for bit what the ring
      // gives).
      reduce_scratch_.resize(static_cast<size_t>(size_ * count));
      all_gather(data, reduce_scratch_.data(), count, where);
      sum_in_rank_order(reduce_scratch_.data(), size_, count, data);
      return;
    }
    std::vector<at::Tensor> tensors = {wrap(data, count, where)};
    if (stages_through_host(where)) {
      at::Tensor host = tensors[0].to(at::kCPU);
      std::vector<at::Tensor> staged = {host};
      run("all-reduce", [&] { return group_->allreduce(staged); });
      tensors[0].copy_(host);
      return;
    }
    run("all-reduce", [&] { return group_->allreduce(tensors); });
  }

  void all_gather(const float* local, float* gathered, int64_t count, Device where) override {
    // The wrappers of the last buffers are kept: the CPU engine gathers into the same buffer every
    // step; the CUDA engine's changing destinations cost one rebuild (a few microseconds).
    const auto key = std::make_tuple(local, gathered, count, where);
    if (!gather_ || gather_->key != key) {
      gather_ = std::make_unique<Gather>();
      Gather& g = *gather_;
      g.key = key;
      g.outputs.resize(1);
      if (stages_through_host(where)) {
        g.host_in = at::empty({count}, at::kFloat);
        g.host_out = at::empty({size_ * count}, at::kFloat);
        g.device_in = wrap(const_cast<float*>(local), count, where);
        g.device_out = wrap(gathered, size_ * count, where);
        g.inputs = {g.host_in};
        for (int r = 0; r < size_; ++r)
          g.outputs[0].push_back(g.host_out.narrow(0, r * count, count));
      } else {
        g.inputs = {wrap(const_cast<float*>(local), count, where)};
        const at::Tensor out = wrap(gathered, size_ * count, where);
        for (int r = 0; r < size_; ++r) g.outputs[0].push_back(out.narrow(0, r * count, count));
      }
    }
    Gather& g = *gather_;
    if (g.host_in.defined()) g.host_in.copy_(g.device_in);
    // Gloo in LibTorch 1.13 has no _allgather_base: gather into views of one [n, count] buffer.
    run("all-gather", [&] { return group_->allgather(g.outputs, g.inputs); });
    if (g.host_out.defined()) g.device_out.copy_(g.host_out);
  }

  std::vector<int64_t> all_gather_value(int64_t value) override {
    const Device where = backend_ == "nccl" ? Device::Cuda : Device::Cpu;
    const auto options = at::TensorOptions().dtype(at::kLong).device(
        where == Device::Cuda ? at::Device(at::kCUDA, cuda_device_) : at::Device(at::kCPU));
    std::vector<at::Tensor> input = {at::full({1}, value, options)};
    const at::Tensor out = at::empty({size_}, options);
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < size_; ++r) outputs[0].push_back(out.narrow(0, r, 1));
    run("all-gather", [&] { return group_->allgather(outputs, input); });
    const at::Tensor host = out.to(at::kCPU);
    return std::vector<int64_t>(host.data_ptr<int64_t>(), host.data_ptr<int64_t>() + size_);
  }

  void barrier() override {
    run("barrier", [&] { return group_->barrier(); });
  }

 private:
  struct Gather {
    std::tuple<const float*, float*, int64_t, Device> key;
    std::vector<at::Tensor> inputs;
    std::vector<std::vector<at::Tensor>> outputs;
    at::Tensor host_in, host_out, device_in, device_out;  // only when staging CUDA data for Gloo
  };

  // Gloo moves host memory; CUDA buffers are copied through it rather than relying on the
  // installed Gloo having been built with CUDA support.
  bool stages_through_host(Device where) const {
    return where == Device::Cuda && backend_ == "gloo";
  }

  at::Tensor wrap(float* data, int64_t count, Device where) const {
    const auto options = at::TensorOptions()
                             .dtype(at::kFloat)
                             .device(where == Device::Cuda ? at::Device(at::kCUDA, cuda_device_)
                                                           : at::Device(at::kCPU));
    return at::from_blob(data, {count}, options);
  }

  template <typename Launch>
  void run(const char* what, Launch&& launch) {
    try {
      auto work = launch();
      work->wait();
    } catch (const std::exception& e) {
      const std::string cause = heartbeat_->diagnose();
      throw CommError("rank " + std::to_string(rank_) + ": " + (cause.empty() ? "" : cause + "; ") +
                      what + " over " + backend_ + " failed: " + first_line(e.what()));
    }
  }

  c10::intrusive_ptr<Group> group_;
  std::string backend_;
  int rank_, size_, cuda_device_;
  std::unique_ptr<Gather> gather_;
  std::unique_ptr<Heartbeat> heartbeat_;
  static constexpr int64_t kSmallReduce = 1024;
  std::vector<float> reduce_scratch_;
};

// Where a rank joins its job, for the join's messages.
struct JoinPlace {
  JoinPlace(const Launch& launch, std::chrono::milliseconds limit)
      : rank(launch.rank),
        world(launch.world_size),
        port(launch.master_port),
        where(launch.master_addr + ":" + std::to_string(launch.master_port)),
        timeout(limit) {}
  int rank, world, port;
  std::string where;  // MASTER_ADDR:MASTER_PORT
  std::chrono::milliseconds timeout;

  std::string within() const {
    const std::string s = std::to_string(timeout.count() / 1000);
    return "within " + s + " s (--timeout " + s + ")";
  }
  // "rank R: cannot join the process group at A:P: WHY; is another program using port P?"
  CommError not_a_store(const std::string& why) const {
    return CommError("rank " + std::to_string(rank) + ": cannot join the process group at " +
                     where + ": " + why + "; is another program using port " +
                     std::to_string(port) + "?");
  }
  CommError failed(const std::string& why, const std::string& hint) const {
    return CommError("rank " + std::to_string(rank) + ": cannot join the process group at " +
                     where + " " + within() + " (" + why + "); " + hint);
  }
};

// While a rank joins: c10d's store client reads replies in a thread of its own, and a reply from
// a program that is not a store makes it throw there (std::bad_alloc for a length read off the
// wire), which calls std::terminate. This turns that abort into the join's error line, status 3.
class JoinFailureLine {
 public:
  explicit JoinFailureLine(const JoinPlace& place) {
    const CommError error = place.not_a_store("%s");
    line() = error_line(place.rank, "communication error", error.what());
    previous_ = std::set_terminate(&JoinFailureLine::on_terminate);
  }
  ~JoinFailureLine() { std::set_terminate(previous_); }
  JoinFailureLine(const JoinFailureLine&) = delete;
  JoinFailureLine& operator=(const JoinFailureLine&) = delete;

 private:
  static std::string& line() {
    static std::string text;
    return text;
  }
  [[noreturn]] static void on_terminate() noexcept {
    std::string why = "c10d failed in a thread of its own";
    try {
      if (const std::exception_ptr thrown = std::current_exception())
        std::rethrow_exception(thrown);
    } catch (const std::exception& e) {
      why = "its reply makes c10d fail (" + first_line(e.what()) + ")";
    } catch (...) {}
    std::string text = line();
    text.replace(text.find("%s"), 2, why);
    ssize_t ignored = ::write(STDERR_FILENO, text.data(), text.size());
    (void)ignored;
    std::_Exit(3);
  }
  std::terminate_handler previous_ = nullptr;
};

// Every rank adds itself to a counter in the store, then waits until all have (or the deadline
// passes: then the line says how many came).
void wait_for_ranks(c10d::Store& store, const JoinPlace& place, Clock::time_point deadline) {
  const std::string key = "khsgd/joined";
  int64_t joined = store.add(key, 1);
  while (joined < place.world) {
    if (Clock::now() >= deadline)
      throw CommError(
          "rank " + std::to_string(place.rank) + ": " + std::to_string(joined) + " of " +
          std::to_string(place.world) + " ranks joined " + place.within() +
          "; start the others, or check that all have the same MASTER_ADDR:MASTER_PORT (" +
          place.where + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    joined = store.add(key, 0);
  }
}

// The TCPStore (rank 0's, or torchrun's agent's) once every rank has joined it. Runs in a thread
// of its own (join_store): a listener that never answers would hold a c10d call for ever.
c10::intrusive_ptr<c10d::Store> open_store(const Launch& launch, const JoinPlace& place,
                                           Clock::time_point deadline) {
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(launch.master_port);
    options.isServer = launch.rank == 0 && !launch.agent_store;
    options.numWorkers = launch.world_size;
    options.waitWorkers = false;  // wait_for_ranks() counts, and can say who is missing
    options.timeout = place.timeout;
    store = c10::make_intrusive<c10d::TCPStore>(launch.master_addr, options);
    if (launch.agent_store)
      store = c10::make_intrusive<c10d::PrefixStore>(launch.store_prefix, store);
  } catch (const std::exception& e) {
    throw place.failed(first_line(e.what()),
                       "are all ranks started with the same MASTER_ADDR/MASTER_PORT?");
  }
  // A key nobody has added to: a store answers 0, another program garbage (or it throws).
  const std::string probe = "khsgd/probe/" + std::to_string(launch.rank) + "/" +
                            std::to_string(::getpid()) + "/" +
                            std::to_string(Clock::now().time_since_epoch().count());
  int64_t answer = -1;
  try {
    answer = store->add(probe, 0);
  } catch (const std::exception& e) {
    throw place.not_a_store("its reply makes c10d fail (" + first_line(e.what()) + ")");
  }
  if (answer != 0) throw place.not_a_store("it does not answer as a c10d store");
  wait_for_ranks(*store, place, deadline);
  return store;
}

// Before c10d is given the port: rank 0 checks that it can serve there, the others that what
// listens there (once it does) behaves like a store.
void check_master_port(const Launch& launch, const JoinPlace& place, Clock::time_point deadline) {
  if (launch.rank == 0 && !launch.agent_store) {
    const std::string busy = port_unavailable(launch.master_port);
    if (!busy.empty())
      throw CommError("rank 0: cannot serve the process group's store on MASTER_PORT " +
                      std::to_string(place.port) + " (" + busy +
                      "); is another program using port " + std::to_string(place.port) +
                      "? Choose another MASTER_PORT");
    return;
  }
  const ListenerProbe probe =
      probe_listener(launch.master_addr, launch.master_port, deadline, kQuietListener);
  if (!probe.reached)
    throw place.failed(probe.error, "is rank 0 started, with the same MASTER_ADDR/MASTER_PORT?");
  if (!probe.not_a_store.empty())
    throw place.not_a_store(probe.not_a_store + ", which a c10d store never does");
}

// The rendezvous store: torchrun's agent's, rank 0's TCPStore, or, for a plain process alone (one
// rank opening NCCL), one in this process. Every failure is one CommError line (status 3).
c10::intrusive_ptr<c10d::Store> join_store(const Launch& launch,
                                           std::chrono::milliseconds timeout) {
  if (launch.world_size == 1 && launch.launcher == "single")
    return c10::make_intrusive<c10d::HashStore>();
  const JoinPlace place(launch, timeout);
  const Clock::time_point deadline = Clock::now() + timeout;
  check_master_port(launch, place, deadline);
  const JoinFailureLine on_abort(place);
  // The join runs in a thread that this one waits for until shortly after the deadline: a
  // listener that accepts and never answers would hold a c10d call for ever. A thread left
  // behind then is abandoned; the process exits with the error.
  auto join = std::make_shared<std::packaged_task<c10::intrusive_ptr<c10d::Store>()>>(
      [launch, place, deadline] { return open_store(launch, place, deadline); });
  std::future<c10::intrusive_ptr<c10d::Store>> joined = join->get_future();
  std::thread([join] {
    block_stop_signals_in_this_thread();
    (*join)();
  }).detach();
  if (joined.wait_until(deadline + kJoinGrace) != std::future_status::ready)
    throw place.not_a_store("no c10d store answered there " + place.within());
  return joined.get();
}

}  // namespace

std::unique_ptr<Communicator> make_solo_communicator() {
  return std::make_unique<SoloCommunicator>();
}

std::vector<std::string> c10d_backends() {
  std::vector<std::string> backends;
#ifdef USE_C10D_GLOO
  backends.push_back("gloo");
#endif
#ifdef USE_C10D_NCCL
  backends.push_back("nccl");
#endif
  return backends;
}

std::unique_ptr<PeerMonitor> start_peer_monitor(
    const std::string& host, int port, bool serve, int rank, int size,
    std::chrono::milliseconds timeout, std::shared_ptr<const std::atomic<int64_t>> progress) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(port);
  options.isServer = serve;
  options.numWorkers = size;
  options.waitWorkers = false;
  options.timeout = timeout;
  try {
    return std::make_unique<StorePeerMonitor>(c10::make_intrusive<c10d::TCPStore>(host, options),
                                              rank, size, std::move(progress));
  } catch (const std::exception& e) {
    throw CommError(
        "rank " + std::to_string(rank) + ": cannot " +
        (serve ? "open the heartbeat store on port " + std::to_string(port)
               : "join rank 0's heartbeat store at " + host + ":" + std::to_string(port)) +
        " (" + first_line(e.what()) + ")");
  }
}

std::unique_ptr<Communicator> connect_process_group(const Launch& launch,
                                                    const std::string& backend, int cuda_device,
                                                    std::chrono::milliseconds timeout) {
  const c10::intrusive_ptr<c10d::Store> store = join_store(launch, timeout);
  try {
#ifdef USE_C10D_GLOO
    if (backend == "gloo") {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
      if (interface != nullptr && interface[0] != '\0') {
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
      } else if (is_loopback(launch.master_addr)) {
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        const std::string local = local_address_towards(launch.master_addr, launch.master_port);
        options->devices.push_back(local.empty()
                                       ? c10d::ProcessGroupGloo::createDefaultDevice()
                                       : c10d::ProcessGroupGloo::createDeviceForHostname(local));
      }
      auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, launch.rank,
                                                               launch.world_size, options);
      return std::make_unique<ProcessGroupCommunicator<c10d::ProcessGroupGloo>>(
          group, store, backend, launch.rank, launch.world_size, cuda_device);
    }
#endif
#ifdef USE_C10D_NCCL
    if (backend == "nccl") {
      // PyTorch 2.x's NCCL watchdog aborts the whole process when a collective times out (a lost
      // peer). Blocking wait makes the waiting call throw instead, so a lost rank still ends with
      // one line and exit status 3; a user's own setting is kept.
      setenv("TORCH_NCCL_BLOCKING_WAIT", "1", /*overwrite=*/0);
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(cuda_device));
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, launch.rank,
                                                               launch.world_size, options);
      return std::make_unique<ProcessGroupCommunicator<c10d::ProcessGroupNCCL>>(
          group, store, backend, launch.rank, launch.world_size, cuda_device);
    }
#endif
  } catch (const std::exception& e) {
    throw CommError("rank " + std::to_string(launch.rank) + ": cannot open the " + backend +
                    " process group: " + first_line(e.what()));
  }
  throw UserError("--backend " + backend + " is not available in this build");
}

}  // namespace khsgd
