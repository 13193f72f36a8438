// A thread that runs a task now and then every period until it is destroyed: the MPI collective
// watchdog (mpi_comm.cpp). It never takes SIGTERM/SIGINT/SIGHUP (stop_signal.hpp).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "khsgd/run/stop_signal.hpp"

namespace khsgd {

class PeriodicThread {
 public:
  PeriodicThread(std::chrono::milliseconds period, std::function<void()> task)
      : period_(period), task_(std::move(task)), thread_([this] { run(); }) {}
  // Stops after the task's current run (a destructor waits for it) and joins.
  ~PeriodicThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

 private:
  void run() {
    block_stop_signals_in_this_thread();
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      lock.unlock();
      task_();
      lock.lock();
      wake_.wait_for(lock, period_, [this] { return stop_; });
    }
  }

  std::chrono::milliseconds period_;
  std::function<void()> task_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;  // last: it starts once the rest is built
};

}  // namespace khsgd
