#include "khsgd/comm/heartbeat.hpp"

#include <cstdio>
#include <vector>

#include "khsgd/run/stop_signal.hpp"

namespace khsgd {

namespace {

std::string beat_key(int r) { return "khsgd/beat/" + std::to_string(r); }
std::string progress_key(int r) { return "khsgd/progress/" + std::to_string(r); }

}  // namespace

Heartbeat::Heartbeat(std::shared_ptr<CounterStore> store, int rank, int size,
                     std::shared_ptr<const std::atomic<int64_t>> progress,
                     std::chrono::milliseconds interval)
    : store_(std::move(store)),
      rank_(rank),
      size_(size),
      progress_(std::move(progress)),
      interval_(interval) {
  beat_ = std::thread([this] { beat_until_stopped(); });
  try {
    lookout_ = std::thread([this] { answer_until_stopped(); });
  } catch (...) {  // no second thread: stop and join the first before the error leaves
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    beat_.join();
    throw;
  }
}

Heartbeat::~Heartbeat() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  answered_.notify_all();
  beat_.join();
  lookout_.join();
}

std::string Heartbeat::store_gone() const {
  return rank_ == 0 ? "" : "lost rank 0 (the rendezvous store it serves does not answer)";
}

std::string Heartbeat::diagnose() {
  std::unique_lock<std::mutex> lock(mutex_);
  const uint64_t ticket = ++asked_;
  wake_.notify_all();
  if (answered_.wait_for(lock, interval_ * 6,
                         [&] { return answered_ticket_ >= ticket || stop_; }) &&
      answered_ticket_ >= ticket)
    return answer_;
  return store_gone();
}

bool Heartbeat::pause(std::chrono::milliseconds duration) {
  std::unique_lock<std::mutex> lock(mutex_);
  return !wake_.wait_for(lock, duration, [this] { return stop_; });
}

void Heartbeat::beat_until_stopped() {
  block_stop_signals_in_this_thread();
  int64_t published = 0;
  do {
    try {
      store_->add(beat_key(rank_), 1);
      const int64_t now = progress_->load(std::memory_order_relaxed);
      if (now != published) {
        store_->add(progress_key(rank_), now - published);  // add keeps it an integer key
        published = now;
      }
    } catch (const std::exception&) {
      // The store is gone (rank 0 died): the failing collective will report it.
    }
  } while (pause(interval_));
}

void Heartbeat::answer_until_stopped() {
  block_stop_signals_in_this_thread();
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [this] { return stop_ || asked_ > answered_ticket_; });
    if (stop_) return;
    const uint64_t ticket = asked_;
    lock.unlock();
    std::string answer = look();
    lock.lock();
    answer_ = std::move(answer);
    answered_ticket_ = ticket;
    answered_.notify_all();
  }
}

std::string Heartbeat::look() {
  try {
    std::vector<int64_t> before(size_), after(size_), progress(size_);
    for (int r = 0; r < size_; ++r) before[r] = store_->add(beat_key(r), 0);
    if (!pause(interval_ * 5 / 2)) return "";
    for (int r = 0; r < size_; ++r) after[r] = store_->add(beat_key(r), 0);
    for (int r = 0; r < size_; ++r) progress[r] = store_->add(progress_key(r), 0);
    std::string lost, stuck;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      if (after[r] == before[r])
        lost += (lost.empty() ? "" : ", ") + std::to_string(r);
      else if (progress[r] < progress[rank_])
        stuck += (stuck.empty() ? "" : ", ") + std::to_string(r);
    }
    char silent[32];
    std::snprintf(silent, sizeof silent, "%g s", 2.5 * interval_.count() / 1000.0);
    if (!lost.empty()) return "lost rank " + lost + " (no heartbeat for " + silent + ")";
    if (!stuck.empty()) return "rank " + stuck + " is alive but stuck behind this rank";
    return "";
  } catch (const std::exception&) { return store_gone(); }
}

}  // namespace khsgd
