// Which peer is lost or stuck when a collective fails: every rank bumps a counter in a shared
// store once an interval and publishes its progress; a failing rank watches the counters for
// 2.5 intervals. A rank whose counter stood still is gone (or stopped), one that beats but lags
// is stuck; the store not answering means rank 0, which serves it, is gone.
//
// Threads: a Heartbeat owns exactly two, both started by its constructor and joined by its
// destructor: the beat, and the lookout that answers diagnose(). Neither outlives the object;
// the destructor waits for a store call in flight, which the store's own timeout bounds.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace khsgd {

// The shared store of integer counters the heartbeats go through (c10d's TCPStore in comm.cpp).
class CounterStore {
 public:
  virtual ~CounterStore() = default;
  // Adds `delta` to the integer at `key` (0 when new) and returns the sum; throws when the store
  // cannot be reached. May block until the store's timeout.
  virtual int64_t add(const std::string& key, int64_t delta) = 0;
};

class Heartbeat {
 public:
  // `progress`: how far this rank has got. Shared, so that a Heartbeat abandoned on the way to an
  // error exit (comm.cpp, mpi_comm.cpp) never reads freed memory.
  Heartbeat(std::shared_ptr<CounterStore> store, int rank, int size,
            std::shared_ptr<const std::atomic<int64_t>> progress,
            std::chrono::milliseconds interval = std::chrono::milliseconds(1000));
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // Which ranks are lost or stuck, in words ("" when every peer looks alive and current). Takes
  // 2.5 intervals; at most 6, after which a store that does not answer is reported as rank 0 lost
  // (a stopped, not dead, server blocks store calls until their timeout).
  std::string diagnose();

 private:
  void beat_until_stopped();
  void answer_until_stopped();
  std::string look();
  // Sleeps `duration` unless the Heartbeat is stopping; false when it is.
  bool pause(std::chrono::milliseconds duration);
  std::string store_gone() const;

  const std::shared_ptr<CounterStore> store_;
  const int rank_, size_;
  const std::shared_ptr<const std::atomic<int64_t>> progress_;
  const std::chrono::milliseconds interval_;

  std::mutex mutex_;
  std::condition_variable wake_;      // stop_ or a new question for the lookout
  std::condition_variable answered_;  // the lookout has answered
  bool stop_ = false;
  uint64_t asked_ = 0, answered_ticket_ = 0;
  std::string answer_;

  std::thread beat_, lookout_;  // last: started when everything above is ready
};

}  // namespace khsgd
