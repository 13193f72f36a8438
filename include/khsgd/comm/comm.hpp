// Communication between ranks: c10d's process groups behind a small interface.
//
// The trainer hands raw buffers (host or CUDA memory) and never sees c10d; one rank alone uses
// SoloCommunicator, which copies and returns. Collectives block until done and throw CommError
// when a peer is lost or the timeout passes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "khsgd/app/launch.hpp"
#include "khsgd/torch/torch_ops.hpp"

namespace khsgd {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int size() const = 0;

  // data[0..count) <- sum over ranks, in place.
  virtual void all_reduce_sum(float* data, int64_t count, Device where) = 0;
  // gathered[r * count .. (r + 1) * count) <- rank r's local[0..count).
  virtual void all_gather(const float* local, float* gathered, int64_t count, Device where) = 0;
  // Every rank's value, indexed by rank (host memory; for agreement checks, not the hot loop).
  virtual std::vector<int64_t> all_gather_value(int64_t value) = 0;
  virtual void barrier() = 0;
  // How far this rank has got (the epoch, increasing). Published with a heartbeat, so that
  // when a collective fails the others can tell which rank was lost or stuck.
  void set_progress(int64_t value) { progress_->store(value, std::memory_order_relaxed); }

 protected:
  std::shared_ptr<std::atomic<int64_t>> progress_ = std::make_shared<std::atomic<int64_t>>(0);
};

std::unique_ptr<Communicator> make_solo_communicator();

// out[i] = sum over r of gathered[r * count + i], added in rank order from rank 0: how every
// backend sums D-RR's gradients, so that their results agree bit for bit. `out` may be rank 0's
// row.
void sum_in_rank_order(const float* gathered, int ranks, int64_t count, float* out);

// Joins the job described by `launch` through a c10d TCPStore (rank 0 serves it unless torchrun's
// agent does; a plain process alone keeps an in-process store) and opens ProcessGroupGloo or
// ProcessGroupNCCL. `cuda_device` is this rank's GPU for
// NCCL (a backend this build has: resolve_backend, backends.hpp, checked). Throws CommError when
// peers do not join within `timeout`. A collective that fails or waits longer than `timeout` throws
// CommError naming the rank that was lost, when the heartbeats tell.
std::unique_ptr<Communicator> connect_process_group(const Launch& launch,
                                                    const std::string& backend, int cuda_device,
                                                    std::chrono::milliseconds timeout);

// The c10d backends this build can open ("gloo", "nccl"); backends.hpp lists all of them.
std::vector<std::string> c10d_backends();

// Which peers are lost or stuck, told by heartbeats: every rank bumps its counter in a c10d
// TCPStore once a second and publishes its progress. Used by backends whose collectives cannot
// say which peer failed (MPI).
class PeerMonitor {
 public:
  virtual ~PeerMonitor() = default;
  // "lost rank 1 (no heartbeat for 2.5 s)" and the like; "" when every peer looks alive and
  // current. Takes a few seconds (it watches the counters move).
  virtual std::string diagnose() = 0;
  // The port the store listens on (the serving rank's; the port asked for elsewhere).
  virtual int port() const = 0;
};

// Rank 0 (serve = true) opens the store on `port` (0: any free port, port() tells which) without
// waiting for the others; the others join it at host:port within `timeout` (CommError if not).
std::unique_ptr<PeerMonitor> start_peer_monitor(
    const std::string& host, int port, bool serve, int rank, int size,
    std::chrono::milliseconds timeout, std::shared_ptr<const std::atomic<int64_t>> progress);

}  // namespace khsgd
