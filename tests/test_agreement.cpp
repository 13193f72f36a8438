// The ranks' agreements (agreement.hpp), with two ranks played by two threads: a failure on one
// rank stops both with their own lines, and differing flags are named.
#include <gtest/gtest.h>

#include <signal.h>

#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "khsgd/app/config.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/run/agreement.hpp"

using namespace khsgd;

namespace {

// Two communicators that exchange values through shared memory: enough for the agreements, which
// only gather one value per rank at a time.
class ThreadPair {
 public:
  class End final : public Communicator {
   public:
    End(ThreadPair& pair, int rank) : pair_(pair), rank_(rank) {}
    int size() const override { return 2; }
    void all_reduce_sum(float*, int64_t, Device) override { throw std::logic_error("unused"); }
    void all_gather(const float*, float*, int64_t, Device) override {
      throw std::logic_error("unused");
    }
    void barrier() override { pair_.exchange(rank_, 0); }
    std::vector<int64_t> all_gather_value(int64_t value) override {
      return pair_.exchange(rank_, value);
    }

   private:
    ThreadPair& pair_;
    int rank_;
  };

  std::vector<int64_t> exchange(int rank, int64_t value) {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t round = round_;
    values_[rank] = value;
    if (++arrived_ == 2) {
      result_ = {values_[0], values_[1]};
      arrived_ = 0;
      ++round_;
      done_.notify_all();
    } else {
      done_.wait(lock, [&] { return round_ != round; });
    }
    ++exchanges_[rank];
    return result_;
  }

  int64_t exchanges(int rank) const { return exchanges_[rank]; }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  int64_t values_[2] = {0, 0};
  std::vector<int64_t> result_;
  int arrived_ = 0;
  int64_t round_ = 0;
  int64_t exchanges_[2] = {0, 0};
};

// Runs `work(comm, rank)` on two threads; returns each rank's error message ("" when none), an
// IoError's marked "[io] ".
template <typename Work>
std::vector<std::string> on_two_ranks(ThreadPair& pair, Work work) {
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank)
    threads.emplace_back([&, rank] {
      ThreadPair::End end(pair, rank);
      try {
        work(end, rank);
      } catch (const UserError& e) { errors[rank] = e.what(); } catch (const IoError& e) {
        errors[rank] = std::string("[io] ") + e.what();
      }
    });
  for (auto& t : threads) t.join();
  return errors;
}

std::vector<FlagSetting> flags_of(const Config& c) { return behaviour_flags(c); }

}  // namespace

TEST(Agreement, AFailureOnOneRankStopsBothWithTheirOwnLines) {
  ThreadPair pair;
  const auto errors = on_two_ranks(pair, [](Communicator& comm, int rank) {
    run_agreed(comm, "load its data", [&] {
      if (rank == 1) throw UserError("data/HMDA/features-processed-NY-2017.pt: file not found");
    });
  });
  EXPECT_EQ(errors[0], "rank 1 could not load its data (its error is printed above); stopping");
  EXPECT_EQ(errors[1], "data/HMDA/features-processed-NY-2017.pt: file not found");
}

TEST(Agreement, RanksThatAgreeGoOnAfterOneRound) {
  ThreadPair pair;
  Config config;
  config.resume = true;
  const auto errors = on_two_ranks(
      pair, [&](Communicator& comm, int) { agree_on_settings(comm, flags_of(config), 1234); });
  EXPECT_EQ(errors, (std::vector<std::string>{"", ""}));
  EXPECT_EQ(pair.exchanges(0), 1) << "agreeing ranks need one collective, not one per flag";
}

TEST(Agreement, ADifferingFlagIsNamedOnEveryRank) {
  // Rank 0 was given --resume, rank 1 was not: both stop at the start, naming the flag.
  ThreadPair pair;
  const auto errors = on_two_ranks(pair, [](Communicator& comm, int rank) {
    Config config;
    config.resume = rank == 0;
    agree_on_settings(comm, flags_of(config), 1234);
  });
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_NE(
        errors[rank].find("rank 1 was started with different flags or different data than rank 0"),
        std::string::npos)
        << errors[rank];
    EXPECT_NE(errors[rank].find("--resume differs"), std::string::npos) << errors[rank];
  }
  EXPECT_NE(errors[0].find("here it is 'on'"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("here it is 'off'"), std::string::npos) << errors[1];
}

TEST(Agreement, DifferentDataIsNamedAsData) {
  ThreadPair pair;
  const auto errors = on_two_ranks(pair, [](Communicator& comm, int rank) {
    agree_on_settings(comm, flags_of(Config{}), rank == 0 ? 1 : 2);
  });
  EXPECT_NE(errors[0].find("(the data differs)"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("(the data differs)"), std::string::npos) << errors[1];
}

TEST(Agreement, EveryBehaviourFlagIsCompared) {
  // Changing any one of these flags must change what the ranks compare.
  const Config base;
  std::vector<Config> variants(21, base);
  variants[0].sorter = "SBW";
  variants[1].seed = 2;
  variants[2].lr = 0.02;
  variants[3].B = 32;
  variants[4].momentum = 0.5;
  variants[5].epochs = 3;
  variants[6].node_cnt = 2;
  variants[7].backend = "gloo";
  variants[8].exp = "other";
  variants[9].device = "cpu";
  variants[10].dataset = "synthetic";
  variants[11].synthetic_rows = 64;
  variants[12].save_orders = true;
  variants[13].results_dir = "elsewhere";
  variants[14].save_grads = {1};
  variants[15].profile = true;
  variants[16].checkpoint_every = 2;
  variants[17].resume = true;
  variants[18].overwrite = true;
  variants[19].timeout = 5;
  variants[20].checkpoint_seconds = 5;
  const auto base_flags = flags_of(base);
  for (size_t v = 0; v < variants.size(); ++v) {
    const auto flags = flags_of(variants[v]);
    ASSERT_EQ(flags.size(), base_flags.size());
    int differing = 0;
    for (size_t f = 0; f < flags.size(); ++f) differing += flags[f].value != base_flags[f].value;
    EXPECT_EQ(differing, 1) << "variant " << v;
  }
}

TEST(Agreement, TheRunIdentityLeavesOutHowTheRunGoes) {
  // A checkpoint written without --resume must be resumable with it (and with another --timeout),
  // but not with another seed or other data.
  Config original, resumed = original, reseeded = original;
  resumed.resume = true;
  resumed.timeout = 10;
  resumed.checkpoint_every = 5;
  resumed.checkpoint_seconds = 0;
  reseeded.seed = 7;
  const int64_t id = run_fingerprint(flags_of(original), 42);
  EXPECT_GE(id, 0);
  EXPECT_EQ(run_fingerprint(flags_of(resumed), 42), id);
  EXPECT_NE(run_fingerprint(flags_of(reseeded), 42), id);
  EXPECT_NE(run_fingerprint(flags_of(original), 43), id);
}

TEST(Agreement, AFailedWriteStopsEveryRankAsAnIoError) {
  ThreadPair pair;
  const auto errors = on_two_ranks(pair, [](Communicator& comm, int rank) {
    run_agreed(comm, "write its checkpoint", [&] {
      if (rank == 1)
        throw IoError("cannot write 'DIR/checkpoint-rank1.bin': No space left on device");
    });
  });
  EXPECT_EQ(errors[0],
            "[io] rank 1 could not write its checkpoint (its error is printed above); stopping");
  EXPECT_EQ(errors[1], "[io] cannot write 'DIR/checkpoint-rank1.bin': No space left on device");
}

TEST(Agreement, TheEndOfEpochDecisionIsOneCollective) {
  struct Case {
    const char* what;
    int signal[2];
    bool due[2];
    const char* failure[2];
    bool checkpoint;
    int stop;
  };
  const Case cases[] = {
      {"nothing to do", {0, 0}, {false, false}, {"", ""}, false, 0},
      {"rank 0's schedule decides", {0, 0}, {true, false}, {"", ""}, true, 0},
      {"the others' clocks do not", {0, 0}, {false, true}, {"", ""}, false, 0},
      {"a signal on any rank stops all, with a checkpoint",
       {0, SIGTERM},
       {false, false},
       {"", ""},
       true,
       SIGTERM},
      {"the lowest rank's signal names the stop",
       {SIGINT, SIGTERM},
       {false, false},
       {"", ""},
       true,
       SIGINT},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ThreadPair pair;
    EpochDecision decided[2];
    const auto errors = on_two_ranks(pair, [&](Communicator& comm, int rank) {
      decided[rank] = agree_after_epoch(comm, c.failure[rank], c.signal[rank], c.due[rank]);
    });
    EXPECT_EQ(errors, (std::vector<std::string>{"", ""}));
    for (int rank = 0; rank < 2; ++rank) {
      EXPECT_EQ(decided[rank].checkpoint, c.checkpoint) << "rank " << rank;
      EXPECT_EQ(decided[rank].stop_signal, c.stop) << "rank " << rank;
    }
    EXPECT_EQ(pair.exchanges(0), 1);
  }
  // A failed write on one rank stops both, before any checkpoint or stop.
  ThreadPair pair;
  const auto errors = on_two_ranks(pair, [&](Communicator& comm, int rank) {
    agree_after_epoch(
        comm, rank == 0 ? "cannot append to 'DIR/metrics.csv': No space left on device" : "",
        SIGTERM, true);
  });
  EXPECT_EQ(errors[0], "[io] cannot append to 'DIR/metrics.csv': No space left on device");
  EXPECT_EQ(errors[1],
            "[io] rank 0 could not write its results (its error is printed above); stopping");
}
