#include "khsgd/comm/mpi_comm.hpp"

#include <mpi.h>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "khsgd/base/cores.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/comm/periodic_thread.hpp"

namespace khsgd {

namespace {

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(length));
}

// Ends the process when a collective has waited longer than the timeout. An MPI collective whose
// peer hangs (stopped, not dead) never returns, and mpirun does not notice a stopped process, so
// the wait is watched from another thread. The caller marks each collective's start and end with
// two relaxed stores: nothing else in the hot loop.
class CollectiveWatchdog {
 public:
  using Diagnose = std::function<std::string()>;

  CollectiveWatchdog(int rank, std::chrono::milliseconds timeout, Diagnose diagnose)
      : rank_(rank),
        timeout_(timeout),
        diagnose_(std::move(diagnose)),
        checks_(std::make_unique<PeriodicThread>(kPoll, [this] { check(); })) {}

  // An odd count means a collective is in flight; `what` names it for the message.
  void enter(const char* what) {
    what_.store(what, std::memory_order_relaxed);
    count_.store(++local_count_, std::memory_order_release);
  }
  void leave() { count_.store(++local_count_, std::memory_order_release); }

 private:
  static constexpr std::chrono::milliseconds kPoll{200};

  // Every kPoll: has the same collective been in flight for the whole timeout?
  void check() {
    const uint64_t now = count_.load(std::memory_order_acquire);
    if (now % 2 == 0 || now != watched_) {
      watched_ = now;
      waited_ = std::chrono::milliseconds{0};
      return;
    }
    waited_ += kPoll;
    if (waited_ < timeout_) return;
    const std::string cause = diagnose_();
    if (count_.load(std::memory_order_acquire) != watched_) return;  // it finished meanwhile
    const std::string line =
        error_line(rank_, "communication error",
                   "rank " + std::to_string(rank_) + ": " + (cause.empty() ? "" : cause + "; ") +
                       what_.load(std::memory_order_relaxed) + " over mpi did not finish within " +
                       std::to_string(timeout_.count() / 1000) + " s (--timeout)");
    std::fputs(line.c_str(), stderr);
    std::fflush(nullptr);
    std::_Exit(3);
  }

  int rank_;
  std::chrono::milliseconds timeout_;
  Diagnose diagnose_;
  uint64_t local_count_ = 0;  // the calling thread's copy of count_
  std::atomic<uint64_t> count_{0};
  std::atomic<const char*> what_{""};
  uint64_t watched_ = 0;                    // the checking thread's: the count last seen
  std::chrono::milliseconds waited_{0};     // and for how long it has stood
  std::unique_ptr<PeriodicThread> checks_;  // last: it checks once the rest is built
};

// The all-gather of ranks that share one machine, through memory they share (an MPI-3 shared
// window, MPI_Win_allocate_shared): each rank writes its part into its own slot and bumps the
// slot's count; the others wait for the count and read. A step's gather is then a few cache-line
// transfers (~0.2-0.3 us for two ranks here) instead of MPI's point-to-point messages (~1 us and
// more, measured on the 2-core development machine), and, with more ranks than cores, a waiting
// rank yields its core to a rank that needs it instead of polling MPI's progress engine (wait_for).
//
// Each slot has two buffers, used by turns: a rank writes the next call's part into the other
// buffer, and it can come back to this one only after every other rank has finished reading it
// (it waits for their next parts first). The counts are C++ atomics in the shared memory (lock-
// free, so valid between processes); the window stays in one passive-target epoch (lock_all) and
// is not accessed through MPI calls.
class SharedWindowGather {
 public:
  // Collective over `comm` (every rank on this machine). Returns null, on every rank alike, where
  // the window cannot be had (or the ranks are not all on one machine): the caller keeps MPI's
  // messages then.
  static std::unique_ptr<SharedWindowGather> open(MPI_Comm comm, int rank, int size,
                                                  int64_t capacity, bool wanted) {
    // Whether every rank wants it (KHSGD_MPI_SHARED_MEMORY is each rank's own environment).
    int want = wanted ? 1 : 0, all_want = 0;
    if (MPI_Allreduce(&want, &all_want, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS || all_want == 0)
      return nullptr;
    MPI_Comm node = MPI_COMM_NULL;
    int node_size = 0;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) != MPI_SUCCESS)
      node = MPI_COMM_NULL;
    if (node != MPI_COMM_NULL) MPI_Comm_size(node, &node_size);
    std::unique_ptr<SharedWindowGather> window;
    int usable = 0;
    if (node_size == size) {
      std::vector<int> sharers = core_sharers(node, rank, node_size);
      window.reset(new SharedWindowGather(node, rank, size, capacity, std::move(sharers)));
      // (the window owns node now)
      usable = window->ok_ ? 1 : 0;
    } else if (node != MPI_COMM_NULL) {
      MPI_Comm_free(&node);
    }
    // Every rank must decide alike: all on one machine, and every window open. This is also the
    // point after which every slot's count is 0 (all constructors have run) for every reader.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    int everywhere = 0;
    if (MPI_Allreduce(&usable, &everywhere, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS ||
        everywhere == 0)
      return nullptr;  // (the window, where there is one, is freed by all of its ranks)
    return window;
  }

  ~SharedWindowGather() {
    if (win_ != MPI_WIN_NULL) {
      if (locked_) MPI_Win_unlock_all(win_);
      MPI_Win_free(&win_);
    }
    if (node_ != MPI_COMM_NULL) MPI_Comm_free(&node_);
  }
  SharedWindowGather(const SharedWindowGather&) = delete;
  SharedWindowGather& operator=(const SharedWindowGather&) = delete;

  int64_t capacity() const { return capacity_; }

  // gathered[r * count ...] = rank r's `local` (count <= capacity()), on every rank.
  void all_gather(const float* local, float* gathered, int64_t count) {
    const uint64_t call = ++calls_;
    const size_t bytes = static_cast<size_t>(count) * sizeof(float);
    Slot& own = *slots_[rank_];
    std::memcpy(buffer(own, call), local, bytes);
    own.count.store(call, std::memory_order_release);
    if (local != gathered + rank_ * count) std::memcpy(gathered + rank_ * count, local, bytes);
    for (int peer = 0; peer < size_; ++peer) {
      if (peer == rank_) continue;
      Slot& theirs = *slots_[peer];
      wait_for(theirs, call);
      std::memcpy(gathered + peer * count, buffer(theirs, call), bytes);
    }
  }

 private:
  struct Slot {
    alignas(64) std::atomic<uint64_t> count;  // calls whose part is in a buffer
    // Then two buffers of capacity floats, from the next cache line on.
  };
  static_assert(std::atomic<uint64_t>::is_always_lock_free, "counts shared between processes");
  static constexpr size_t kHeader = 64;

  // Collective over `node`: where its ranks outnumber the cores they may run on together (the
  // union of their CPU affinities, as mpirun or taskset left them), the ranks that may run on a
  // core `rank` may run on (ranks_sharing_cores; every other rank where the affinities cannot be
  // had); none where every rank can have a core of its own. `all` is in node order, which is
  // `comm`'s (open() splits with key = rank and keeps the window only where node_size == size).
  static std::vector<int> core_sharers(MPI_Comm node, int rank, int node_size) {
    cpu_set_t own;
    CPU_ZERO(&own);
    if (sched_getaffinity(0, sizeof own, &own) != 0) CPU_ZERO(&own);
    std::vector<cpu_set_t> all(static_cast<size_t>(node_size));
    if (MPI_Allgather(&own, sizeof own, MPI_BYTE, all.data(), sizeof own, MPI_BYTE, node) !=
        MPI_SUCCESS) {
      for (cpu_set_t& set : all) CPU_ZERO(&set);  // unknown: shares with every rank
    }
    cpu_set_t any;
    CPU_ZERO(&any);
    for (cpu_set_t& set : all) CPU_OR(&any, &any, &set);
    if (CPU_COUNT(&any) >= node_size) return {};
    return ranks_sharing_cores(all, rank);
  }

  // Waits for `theirs` part of `call`. With a core for every rank, spin a while first (cpu_relax,
  // ~20 ns a turn here, against ~400 ns for a yield that comes back after the peer has written: 2
  // ranks on 2 cores, D-RR 0.0125-0.0139 -> 0.0109-0.0111 s an epoch), then yield between looks.
  // With more ranks than cores, yield whenever a rank that shares this core has not written yet:
  // it can only run once this one leaves the core (spinning there cost 7 against 2.2 us a step, 4
  // ranks on 2 cores). But once those have all written, the ranks still missing are running on
  // other cores: spin for them too, and go on to the next step without a switch. Four ranks bound
  // two to a core then switch about once a step on each core instead of 1.7 times, and a D-RR
  // epoch takes 0.030 s instead of 0.042 s (README, Waiting). Unbound ranks all share every core:
  // every wait yields at once, as before.
  void wait_for(const Slot& theirs, uint64_t call) const {
    wait_spinning([&] { return theirs.count.load(std::memory_order_acquire) >= call; }, kSpins,
                  /*yields=*/-1, [&] { return core_sharer_behind(call); });
  }

  // Whether a rank that shares this rank's core has not yet written its part of `call`.
  bool core_sharer_behind(uint64_t call) const {
    for (const int r : core_sharers_)
      if (slots_[r]->count.load(std::memory_order_relaxed) < call) return true;
    return false;
  }

  SharedWindowGather(MPI_Comm node, int rank, int size, int64_t capacity,
                     std::vector<int> core_sharers)
      : node_(node),
        rank_(rank),
        size_(size),
        capacity_(capacity),
        core_sharers_(std::move(core_sharers)),
        slots_(size, nullptr) {
    // Each rank's segment starts where Open MPI puts it (8-byte aligned, measured); the slot
    // starts at the segment's first cache line.
    const size_t slot_bytes = kHeader + 2 * static_cast<size_t>(capacity) * sizeof(float);
    const auto segment_bytes = static_cast<MPI_Aint>(slot_bytes + alignof(Slot));
    void* base = nullptr;
    if (MPI_Win_allocate_shared(segment_bytes, 1, MPI_INFO_NULL, node_, &base, &win_) !=
        MPI_SUCCESS) {
      win_ = MPI_WIN_NULL;
      return;
    }
    // Errors on the window come back as codes (its default handler would abort the job) so that
    // a failure falls back to messages. No call below waits for the other ranks: a rank that
    // fails here still meets them in open()'s all-reduce.
    MPI_Win_set_errhandler(win_, MPI_ERRORS_RETURN);
    for (int r = 0; r < size_; ++r) {
      MPI_Aint bytes = 0;
      int unit = 0;
      void* where = nullptr;
      if (MPI_Win_shared_query(win_, r, &bytes, &unit, &where) != MPI_SUCCESS ||
          bytes < segment_bytes)
        return;
      const size_t misalignment = reinterpret_cast<uintptr_t>(where) % alignof(Slot);
      slots_[r] = reinterpret_cast<Slot*>(static_cast<char*>(where) +
                                          (misalignment == 0 ? 0 : alignof(Slot) - misalignment));
    }
    new (slots_[rank_]) Slot{};
    slots_[rank_]->count.store(0, std::memory_order_relaxed);
    if (MPI_Win_lock_all(MPI_MODE_NOCHECK, win_) != MPI_SUCCESS) return;
    locked_ = true;
    ok_ = true;
  }

  float* buffer(Slot& slot, uint64_t call) const {
    return reinterpret_cast<float*>(reinterpret_cast<char*>(&slot) + kHeader) +
           (call % 2) * capacity_;
  }

  // A wait's turns of spinning before it yields: ~40 us here, many steps' time (a peer that
  // late has lost its core).
  static constexpr int kSpins = 2048;

  MPI_Comm node_;
  int rank_, size_;
  int64_t capacity_;
  std::vector<int> core_sharers_;  // core_sharers(): none where every rank has a core of its own
  std::vector<Slot*> slots_;
  MPI_Win win_ = MPI_WIN_NULL;
  bool locked_ = false, ok_ = false;
  uint64_t calls_ = 0;
};

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int rank, int size, std::chrono::milliseconds timeout)
      : comm_(comm), rank_(rank), size_(size), timeout_(timeout) {}

  // The heartbeat and the watchdog start once the communicator exists (they watch progress_).
  // Returns the heartbeat store's port.
  int start_watching(const std::string& host, int port) {
    monitor_ = start_peer_monitor(host, port, rank_ == 0, rank_, size_, timeout_, progress_);
    watchdog_ = std::make_unique<CollectiveWatchdog>(rank_, timeout_,
                                                     [this] { return monitor_->diagnose(); });
    return monitor_->port();
  }

  ~MpiCommunicator() override {
    if (std::uncaught_exceptions() > 0) {
      // On the way to an error exit (main() leaves with _Exit): a peer may be gone, so neither
      // MPI_Finalize nor the heartbeat's last store calls may be waited for.
      (void)watchdog_.release();
      (void)monitor_.release();
      (void)shared_.release();
      return;
    }
    shared_.reset();  // collective, as the gathers: every rank gets here
    watchdog_.reset();
    monitor_.reset();
    MPI_Comm_free(&comm_);
    MPI_Finalize();
  }

  int size() const override { return size_; }

  void all_reduce_sum(float* data, int64_t count, Device where) override {
    // Gathered and summed in rank order on every rank: what the Gloo backend does, so D-RR's
    // sums are bit for bit the same whichever backend ran (MPI_Allreduce's order is its own).
    reduce_scratch_.resize(static_cast<size_t>(size_ * count));
    all_gather(data, reduce_scratch_.data(), count, where);
    sum_in_rank_order(reduce_scratch_.data(), size_, count, data);
  }

  void all_gather(const float* local, float* gathered, int64_t count, Device where) override {
    require_host(where);
    if (size_ <= kPointToPointRanks && shared_window_for(count)) {
      run("all-gather", [&] {
        shared_->all_gather(local, gathered, count);
        return MPI_SUCCESS;
      });
      return;
    }
    if (size_ > kPointToPointRanks) {
      run("all-gather", [&] {
        const bool in_place = local == gathered + rank_ * count;
        return MPI_Allgather(in_place ? MPI_IN_PLACE : local, static_cast<int>(count), MPI_FLOAT,
                             gathered, static_cast<int>(count), MPI_FLOAT, comm_);
      });
      return;
    }
    // Few ranks: a message to and from every peer, waited for by spinning briefly and then
    // yielding the core. A blocking collective busy-polls: on a machine whose cores other work
    // shares, a rank whose peer is descheduled then burns its time slice, and epochs on the
    // 2-core development machine varied from 0.02 to 2.5 s; spinning first keeps the
    // microsecond answer when the peer is running.
    const int n = static_cast<int>(count);
    if (local != gathered + rank_ * count)
      std::memcpy(gathered + rank_ * count, local, count * sizeof(float));
    requests_.clear();
    run("all-gather", [&] {
      for (int peer = 0; peer < size_; ++peer) {
        if (peer == rank_) continue;
        requests_.emplace_back();
        const int code = MPI_Irecv(gathered + peer * count, n, MPI_FLOAT, peer, kGatherTag, comm_,
                                   &requests_.back());
        if (code != MPI_SUCCESS) return code;
      }
      for (int peer = 0; peer < size_; ++peer) {
        if (peer == rank_) continue;
        requests_.emplace_back();
        const int code = MPI_Isend(gathered + rank_ * count, n, MPI_FLOAT, peer, kGatherTag, comm_,
                                   &requests_.back());
        if (code != MPI_SUCCESS) return code;
      }
      return wait_all(requests_);
    });
  }

  std::vector<int64_t> all_gather_value(int64_t value) override {
    std::vector<int64_t> all(static_cast<size_t>(size_));
    run("all-gather",
        [&] { return MPI_Allgather(&value, 1, MPI_INT64_T, all.data(), 1, MPI_INT64_T, comm_); });
    return all;
  }

  void barrier() override {
    run("barrier", [&] { return MPI_Barrier(comm_); });
  }

 private:
  void require_host(Device where) const {
    if (where != Device::Cpu)
      throw UserError("--backend mpi moves host memory only; use --device cpu (or nccl on cuda)");
  }

  // Whether gathers of `count` floats go through the shared window, opened on first use (every
  // rank makes the same calls with the same counts, so they open and reopen it together).
  // KHSGD_MPI_SHARED_MEMORY=0 on any rank keeps MPI's messages (to compare the two); =1 requires
  // the window (a CommError where it cannot be opened).
  bool shared_window_for(int64_t count) {
    if (shared_tried_ && (!shared_ || count <= shared_->capacity())) return shared_ != nullptr;
    shared_tried_ = true;
    const char* setting = std::getenv("KHSGD_MPI_SHARED_MEMORY");
    const bool wanted = setting == nullptr || std::strcmp(setting, "0") != 0;
    const bool required = setting != nullptr && std::strcmp(setting, "1") == 0;
    shared_.reset();
    run("opening a shared window", [&] {
      shared_ =
          SharedWindowGather::open(comm_, rank_, size_, std::max<int64_t>(count, 4096), wanted);
      return MPI_SUCCESS;
    });
    if (required && !shared_)
      throw CommError("rank " + std::to_string(rank_) +
                      ": KHSGD_MPI_SHARED_MEMORY=1, but the ranks could not share a window "
                      "(not all on one machine, or MPI_Win_allocate_shared failed)");
    return shared_ != nullptr;
  }

  // Spins on the requests for a few microseconds, then yields the core between tests.
  static int wait_all(std::vector<MPI_Request>& requests) {
    constexpr int kSpins = 256;
    int done = 0;
    for (int spin = 0;; ++spin) {
      const int code = MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done,
                                   MPI_STATUSES_IGNORE);
      if (code != MPI_SUCCESS || done) return code;
      if (spin >= kSpins) sched_yield();
    }
  }

  template <typename Call>
  void run(const char* what, Call&& call) {
    if (watchdog_) watchdog_->enter(what);
    const int code = call();
    if (watchdog_) watchdog_->leave();
    if (code == MPI_SUCCESS) return;
    const std::string cause = monitor_ ? monitor_->diagnose() : "";
    throw CommError("rank " + std::to_string(rank_) + ": " + (cause.empty() ? "" : cause + "; ") +
                    what + " over mpi failed: " + mpi_error_text(code));
  }

  MPI_Comm comm_;
  int rank_, size_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<PeerMonitor> monitor_;
  std::unique_ptr<CollectiveWatchdog> watchdog_;
  std::vector<float> reduce_scratch_;
  std::vector<MPI_Request> requests_;
  std::unique_ptr<SharedWindowGather> shared_;  // the ranks of one machine's all-gathers
  bool shared_tried_ = false;
  // Up to this many ranks gather by point-to-point messages; more use MPI_Allgather's algorithms.
  static constexpr int kPointToPointRanks = 8;
  static constexpr int kGatherTag = 1;
};

// The first IPv4 address of an interface that is up and not loopback ("" when there is none).
std::string first_network_address() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* a = list; a != nullptr && found.empty(); a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    if (!(a->ifa_flags & IFF_UP) || (a->ifa_flags & IFF_LOOPBACK)) continue;
    char text[INET_ADDRSTRLEN] = {0};
    if (inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, text,
                  sizeof text))
      found = text;
  }
  freeifaddrs(list);
  return found;
}

// Where the others reach rank 0's heartbeat store: MASTER_ADDR when set, loopback when every rank
// is on this machine, else this machine's first network address.
std::string heartbeat_host(const Launch& launch) {
  const char* master = std::getenv("MASTER_ADDR");
  if (master != nullptr && master[0] != '\0') return master;
  if (launch.local_world_size >= launch.world_size) return "127.0.0.1";
  const std::string address = first_network_address();
  return address.empty() ? "127.0.0.1" : address;
}

// mpirun ends every rank (SIGCONT, SIGTERM, later SIGKILL) as soon as one exits abnormally,
// before a collective could fail here: say so in one line and leave with the lost-peer status.
// The line is formatted beforehand, as a signal handler may only write().
char stopped_line[512];
size_t stopped_length = 0;

void on_stopped_by_mpirun(int) {
  const ssize_t ignored = write(STDERR_FILENO, stopped_line, stopped_length);
  (void)ignored;
  _exit(3);
}

void report_termination_by_mpirun(int rank) {
  const std::string line = error_line(
      rank, "communication error",
      "rank " + std::to_string(rank) +
          ": stopped by mpirun (SIGTERM), which ends every rank "
          "when one exits abnormally or the job is interrupted; mpirun's message names the rank");
  stopped_length = std::min(line.size(), sizeof stopped_line);
  std::memcpy(stopped_line, line.data(), stopped_length);
  struct sigaction action {};
  action.sa_handler = on_stopped_by_mpirun;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
}

void check(int code, const Launch& launch, const std::string& what) {
  if (code != MPI_SUCCESS)
    throw CommError("rank " + std::to_string(launch.rank) + ": " + what +
                    " failed: " + mpi_error_text(code));
}

}  // namespace

std::unique_ptr<Communicator> connect_mpi(const Launch& launch, std::chrono::milliseconds timeout) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    // Only the main thread calls MPI; the heartbeat and the watchdog never do.
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      throw CommError("rank " + std::to_string(launch.rank) + ": MPI_Init failed");
    if (provided < MPI_THREAD_FUNNELED)
      throw CommError("rank " + std::to_string(launch.rank) +
                      ": this MPI library offers no MPI_THREAD_FUNNELED (khsgd's heartbeat and "
                      "watchdog threads run beside the MPI calls of the main thread)");
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (rank != launch.rank || size != launch.world_size)
    throw CommError("MPI says rank " + std::to_string(rank) + " of " + std::to_string(size) +
                    ", mpirun's environment rank " + std::to_string(launch.rank) + " of " +
                    std::to_string(launch.world_size) + "; start the ranks with mpirun");
  report_termination_by_mpirun(rank);
  MPI_Comm comm = MPI_COMM_NULL;
  check(MPI_Comm_dup(MPI_COMM_WORLD, &comm), launch, "MPI_Comm_dup");
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  auto communicator = std::make_unique<MpiCommunicator>(comm, rank, size, timeout);

  // Rank 0 opens the heartbeat store on a free port and tells the others where it is; then every
  // rank says whether it is watching, so that all stop together when one cannot.
  struct {
    char host[256];
    int32_t port;
  } store = {};
  std::string failure;
  if (rank == 0) {
    try {
      std::snprintf(store.host, sizeof store.host, "%s", heartbeat_host(launch).c_str());
      store.port = communicator->start_watching(store.host, 0);
    } catch (const CommError& e) { failure = e.what(); }
  }
  check(MPI_Bcast(&store, sizeof store, MPI_BYTE, 0, comm), launch,
        "broadcasting the heartbeat store's address");
  if (rank != 0 && store.port > 0) {
    try {
      communicator->start_watching(store.host, store.port);
    } catch (const CommError& e) { failure = e.what(); }
  }
  const std::vector<int64_t> failed = communicator->all_gather_value(failure.empty() ? 0 : 1);
  if (!failure.empty()) throw CommError(failure);
  for (int r = 0; r < size; ++r)
    if (failed[r] != 0)
      throw CommError("rank " + std::to_string(r) +
                      " could not start its heartbeat (its error is "
                      "printed above); stopping");
  return communicator;
}

}  // namespace khsgd
