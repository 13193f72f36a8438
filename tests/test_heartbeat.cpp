// The heartbeat that names a lost or stuck rank (heartbeat.hpp), against a store played by the
// test: its diagnoses, and that its threads never outlive it, even when the store hangs.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "khsgd/comm/heartbeat.hpp"

using namespace khsgd;
using namespace std::chrono_literals;

namespace {

// Counters in memory. While frozen, every call blocks (a stopped store server); calls made
// after `closed()` are counted: no thread of a destroyed Heartbeat may make one.
class FakeStore final : public CounterStore {
 public:
  int64_t add(const std::string& key, int64_t delta) override {
    std::unique_lock<std::mutex> lock(mutex_);
    if (closed_) ++calls_after_close_;
    ++in_flight_;
    thawed_.wait(lock, [this] { return !frozen_; });
    --in_flight_;
    return counters_[key] += delta;
  }
  void set(const std::string& key, int64_t value) {
    std::lock_guard<std::mutex> lock(mutex_);
    counters_[key] = value;
  }
  void freeze(bool frozen) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      frozen_ = frozen;
    }
    thawed_.notify_all();
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  int in_flight() {
    std::lock_guard<std::mutex> lock(mutex_);
    return in_flight_;
  }
  int calls_after_close() {
    std::lock_guard<std::mutex> lock(mutex_);
    return calls_after_close_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable thawed_;
  std::map<std::string, int64_t> counters_;
  bool frozen_ = false, closed_ = false;
  int in_flight_ = 0, calls_after_close_ = 0;
};

// Long enough that a loaded CI machine (ctest -j2 beside multi-process tests) still runs the
// heartbeat's threads within a diagnosis's 6 intervals: at 20 ms one run of this file failed there.
constexpr auto kInterval = 80ms;

// Rank 0 of two, played by the test: beats every few ms at progress `progress` while it runs.
class PeerZero {
 public:
  PeerZero(FakeStore& store, int64_t progress) : store_(store) {
    store_.set("khsgd/progress/0", progress);
    thread_ = std::thread([this] {
      for (int64_t beat = 1; !stop_; ++beat) {
        store_.set("khsgd/beat/0", beat);
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  ~PeerZero() {
    stop_ = true;
    thread_.join();
  }

 private:
  FakeStore& store_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST(Heartbeat, NamesALostAStuckAndALivePeer) {
  auto store = std::make_shared<FakeStore>();
  auto progress = std::make_shared<std::atomic<int64_t>>(5);
  Heartbeat heartbeat(store, /*rank=*/1, /*size=*/2, progress, kInterval);
  EXPECT_EQ(heartbeat.diagnose(), "lost rank 0 (no heartbeat for 0.2 s)");
  {
    PeerZero behind(*store, 3);
    EXPECT_EQ(heartbeat.diagnose(), "rank 0 is alive but stuck behind this rank");
  }
  {
    PeerZero level(*store, 5);
    std::this_thread::sleep_for(kInterval * 3);  // our own progress published
    EXPECT_EQ(heartbeat.diagnose(), "");
  }
}

TEST(Heartbeat, AStoreThatDoesNotAnswerIsRankZeroLost) {
  auto store = std::make_shared<FakeStore>();
  auto progress = std::make_shared<std::atomic<int64_t>>(1);
  Heartbeat heartbeat(store, 1, 2, progress, kInterval);
  store->freeze(true);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(heartbeat.diagnose(), "lost rank 0 (the rendezvous store it serves does not answer)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, kInterval * 6 + 1s);
  store->freeze(false);
}

TEST(Heartbeat, ItsThreadsNeverOutliveIt) {
  // The diagnosis gives up on a hanging store while its store call is still in flight; the
  // Heartbeat is then destroyed (a lost peer ends the run). Its destructor must wait for that
  // call, and no call may come from it afterwards (before: a detached thread that went on using
  // the destroyed object).
  auto store = std::make_shared<FakeStore>();
  auto progress = std::make_shared<std::atomic<int64_t>>(1);
  auto heartbeat = std::make_unique<Heartbeat>(store, 1, 2, progress, kInterval);
  store->freeze(true);
  EXPECT_EQ(heartbeat->diagnose(), "lost rank 0 (the rendezvous store it serves does not answer)");
  ASSERT_GT(store->in_flight(), 0);
  std::atomic<bool> destroyed{false};
  std::thread destroyer([&] {
    heartbeat.reset();
    store->close();
    destroyed = true;
  });
  std::this_thread::sleep_for(kInterval * 5);
  EXPECT_FALSE(destroyed) << "the destructor returned while its store call was in flight";
  store->freeze(false);  // the store answers (or its timeout passes)
  destroyer.join();
  std::this_thread::sleep_for(kInterval * 10);
  EXPECT_EQ(store->calls_after_close(), 0) << "a thread of the destroyed Heartbeat used the store";
  EXPECT_EQ(store->in_flight(), 0);
}
