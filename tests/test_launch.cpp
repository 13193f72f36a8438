// Who this process is in the job, read from torchrun's, Open MPI's or launch.sh's environment.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <initializer_list>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "khsgd/app/launch.hpp"
#include "khsgd/base/cores.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/base/run_parts.hpp"

using namespace khsgd;

namespace {

Launch launch_from(const std::map<std::string, std::string>& vars) {
  return detect_launch([&vars](const char* name) -> const char* {
    const auto found = vars.find(name);
    return found == vars.end() ? nullptr : found->second.c_str();
  });
}

}  // namespace

TEST(LaunchEnvironment, PlainProcessIsRankZeroOfOne) {
  const Launch l = launch_from({});
  EXPECT_EQ(l.rank, 0);
  EXPECT_EQ(l.world_size, 1);
  EXPECT_EQ(l.launcher, "single");
}

TEST(LaunchEnvironment, TorchrunVariables) {
  const Launch l = launch_from({{"RANK", "3"},
                                {"WORLD_SIZE", "4"},
                                {"LOCAL_RANK", "1"},
                                {"MASTER_ADDR", "10.0.0.7"},
                                {"MASTER_PORT", "35500"}});
  EXPECT_EQ(l.launcher, "torchrun");
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.world_size, 4);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.master_addr, "10.0.0.7");
  EXPECT_EQ(l.master_port, 35500);
  EXPECT_FALSE(l.agent_store);
  const Launch agent = launch_from({{"RANK", "0"},
                                    {"WORLD_SIZE", "2"},
                                    {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                    {"TORCHELASTIC_RESTART_COUNT", "2"}});
  EXPECT_TRUE(agent.agent_store);
  EXPECT_EQ(agent.store_prefix, "/worker/attempt_2");
}

TEST(LaunchEnvironment, OpenMpiVariablesWithDefaultRendezvous) {
  const Launch l = launch_from({{"OMPI_COMM_WORLD_RANK", "1"},
                                {"OMPI_COMM_WORLD_SIZE", "2"},
                                {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}});
  EXPECT_EQ(l.launcher, "mpirun");
  EXPECT_EQ(l.rank, 1);
  EXPECT_EQ(l.world_size, 2);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.master_addr, "127.0.0.1");
  EXPECT_EQ(l.master_port, 29500);
}

TEST(LaunchEnvironment, MalformedValuesNameTheVariable) {
  auto message = [](const std::map<std::string, std::string>& vars) {
    try {
      launch_from(vars);
    } catch (const UserError& e) { return std::string(e.what()); }
    return std::string();
  };
  EXPECT_NE(message({{"RANK", "2"}, {"WORLD_SIZE", "2"}}).find("RANK='2'"), std::string::npos);
  EXPECT_NE(message({{"RANK", "0"}, {"WORLD_SIZE", "two"}}).find("WORLD_SIZE='two'"),
            std::string::npos);
  EXPECT_NE(message({{"RANK", "0"}}).find("WORLD_SIZE=''"), std::string::npos);
  EXPECT_NE(
      message({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "99999"}}).find("MASTER_PORT"),
      std::string::npos);
  EXPECT_NE(message({{"OMPI_COMM_WORLD_SIZE", "2"}, {"OMPI_COMM_WORLD_RANK", "-1"}})
                .find("OMPI_COMM_WORLD_RANK"),
            std::string::npos);
}

// The evaluation's threads: the cores this process may use, shared among the ranks of this
// machine (1 to 8), capped by OMP_NUM_THREADS.
TEST(LaunchEnvironment, RankThreadsShareTheAllowedCores) {
  using Vars = std::map<std::string, std::string>;
  auto threads = [](const Vars& vars, int cores) {
    const EnvLookup env = [&vars](const char* name) -> const char* {
      const auto found = vars.find(name);
      return found == vars.end() ? nullptr : found->second.c_str();
    };
    return rank_threads(detect_launch(env), env, cores);
  };
  EXPECT_EQ(threads({}, 2), 2);   // one plain process on two cores
  EXPECT_EQ(threads({}, 1), 1);   // bound to one core
  EXPECT_EQ(threads({}, 64), 8);  // at most 8
  const Vars two_here = {
      {"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"}};
  EXPECT_EQ(threads(two_here, 2), 1);
  EXPECT_EQ(threads(two_here, 8), 4);
  EXPECT_EQ(threads({{"OMPI_COMM_WORLD_SIZE", "3"},
                     {"OMPI_COMM_WORLD_RANK", "0"},
                     {"OMPI_COMM_WORLD_LOCAL_SIZE", "3"}},
                    2),
            1);  // more ranks than cores: still one
  EXPECT_EQ(threads({{"OMP_NUM_THREADS", "1"}}, 16), 1);
  EXPECT_EQ(threads({{"OMP_NUM_THREADS", "3,2"}}, 16), 3);  // OpenMP's nested list: the first
  EXPECT_EQ(threads({{"OMP_NUM_THREADS", "32"}}, 2), 2);    // a cap, not a request
  // RANK and WORLD_SIZE alone: every rank may be on this machine.
  EXPECT_EQ(threads({{"RANK", "0"}, {"WORLD_SIZE", "2"}}, 2), 1);
  EXPECT_EQ(threads({{"RANK", "0"}, {"WORLD_SIZE", "2"}}, 8), 4);
  for (const std::string bad :
       {"0", "-2", "two", "4x", ",2", "1,foo", "2,", " 4", "+4", "99999999999"}) {
    try {
      threads({{"OMP_NUM_THREADS", bad}}, 2);
      ADD_FAILURE() << "OMP_NUM_THREADS=" << bad << " was taken";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("OMP_NUM_THREADS='" + bad + "'"), std::string::npos)
          << e.what();
    }
  }
}

TEST(RunParts, EveryPartRunsOncePartZeroOnTheCaller) {
  std::vector<std::atomic<int>> calls(5);
  std::thread::id part_zero_on;
  run_parts(5, [&](int64_t p) {
    ++calls[static_cast<size_t>(p)];
    if (p == 0) part_zero_on = std::this_thread::get_id();
  });
  for (const auto& c : calls) EXPECT_EQ(c.load(), 1);
  EXPECT_EQ(part_zero_on, std::this_thread::get_id());
  int none = 0;
  run_parts(0, [&](int64_t) { ++none; });
  EXPECT_EQ(none, 0);
}

TEST(RunParts, AFailureIsRethrownOnceEveryPartHasRun) {
  // Parts 1 and 3 throw; every part still runs to its end, and the lowest failing part's error is
  // the one rethrown, after the helpers have been joined.
  std::atomic<int> finished{0};
  try {
    run_parts(4, [&](int64_t p) {
      ++finished;
      if (p == 1 || p == 3) throw std::runtime_error("part " + std::to_string(p));
    });
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) { EXPECT_STREQ(e.what(), "part 1"); }
  EXPECT_EQ(finished.load(), 4);
}

// The ranks that may run on a core rank r may run on: those a waiting rank of the mpi backend's
// shared window gives its core to at once (mpi_comm.cpp), where ranks outnumber the cores.
TEST(RanksSharingCores, AreThoseWhoseAffinitiesMeet) {
  const auto set_of = [](std::initializer_list<int> cpus) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (const int cpu : cpus) CPU_SET(cpu, &set);
    return set;
  };
  // Four ranks bound one core each in turn, as launch.sh --mpi has mpirun bind them on 2 cores.
  const std::vector<cpu_set_t> bound = {set_of({0}), set_of({1}), set_of({0}), set_of({1})};
  EXPECT_EQ(ranks_sharing_cores(bound, 0), std::vector<int>({2}));
  EXPECT_EQ(ranks_sharing_cores(bound, 1), std::vector<int>({3}));
  EXPECT_EQ(ranks_sharing_cores(bound, 2), std::vector<int>({0}));
  EXPECT_EQ(ranks_sharing_cores(bound, 3), std::vector<int>({1}));
  // Unbound: every rank may run anywhere, so each shares with all the others.
  const std::vector<cpu_set_t> unbound(3, set_of({0, 1}));
  EXPECT_EQ(ranks_sharing_cores(unbound, 1), std::vector<int>({0, 2}));
  // Overlapping sets: rank 1's two cores meet both others'; ranks 0 and 2 do not meet.
  const std::vector<cpu_set_t> overlapping = {set_of({0}), set_of({0, 1}), set_of({1, 2})};
  EXPECT_EQ(ranks_sharing_cores(overlapping, 0), std::vector<int>({1}));
  EXPECT_EQ(ranks_sharing_cores(overlapping, 1), std::vector<int>({0, 2}));
  EXPECT_EQ(ranks_sharing_cores(overlapping, 2), std::vector<int>({1}));
  // An affinity that could not be read (empty) is taken to share with every rank, both ways.
  const std::vector<cpu_set_t> unknown = {set_of({0}), set_of({}), set_of({1})};
  EXPECT_EQ(ranks_sharing_cores(unknown, 0), std::vector<int>({1}));
  EXPECT_EQ(ranks_sharing_cores(unknown, 1), std::vector<int>({0, 2}));
  EXPECT_EQ(ranks_sharing_cores(unknown, 2), std::vector<int>({1}));
}

TEST(WaitSpinning, LooksUntilDoneAndNotOnceMoreThroughEveryTier) {
  // done() holds at its 40th look: 10 spinning, 20 yielding and 9 sleeping looks come before it
  // (with yields = -1, yielding for every look after the spins). A sleep is 50 us at least, so the
  // 9 sleeps take 450 us or more: a wait that stayed in the yielding tier would not.
  using Clock = std::chrono::steady_clock;
  for (const int yields : {20, -1}) {
    SCOPED_TRACE("yields " + std::to_string(yields));
    int looks = 0;
    const auto start = Clock::now();
    wait_spinning([&] { return ++looks == 40; }, /*spins=*/10, yields);
    const auto waited = Clock::now() - start;
    EXPECT_EQ(looks, 40);
    if (yields == 20) { EXPECT_GE(waited, std::chrono::microseconds(9 * 50)); }
  }
  // No spins and no yields: every look but the last is followed by a sleep (20 of them, 1 ms).
  int looks = 0;
  const auto start = Clock::now();
  wait_spinning([&] { return ++looks == 21; }, /*spins=*/0, /*yields=*/0);
  EXPECT_EQ(looks, 21);
  EXPECT_GE(Clock::now() - start, std::chrono::microseconds(20 * 50));
  looks = 0;
  wait_spinning([&] { return ++looks == 1; }, /*spins=*/0, /*yields=*/0);  // done at once
  EXPECT_EQ(looks, 1);
}

TEST(WaitSpinning, YieldFirstLooksSpendNoSpinningTurn) {
  // spins = 4; yield_first() holds at its first 3 calls; done() at the 10th look. Looks 1-3 yield
  // without spending a turn, looks 4-7 spin (turns 1-4), looks 8 and 9 are past the spins and yield
  // without asking: 7 calls. Had the yielding looks spent turns, there would be 4.
  int looks = 0, asked = 0;
  wait_spinning([&] { return ++looks == 10; }, /*spins=*/4, /*yields=*/-1,
                [&] { return ++asked <= 3; });
  EXPECT_EQ(looks, 10);
  EXPECT_EQ(asked, 7);
  // Never asked once the spins are spent, nor with none.
  looks = asked = 0;
  wait_spinning([&] { return ++looks == 5; }, /*spins=*/0, /*yields=*/-1,
                [&] { return ++asked > 0; });
  EXPECT_EQ(looks, 5);
  EXPECT_EQ(asked, 0);
}

TEST(WaitSpinning, SeesAnotherThreadsWriteFromTheSleepingTier) {
  std::atomic<bool> written{false};
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    written.store(true, std::memory_order_release);
  });
  wait_spinning([&] { return written.load(std::memory_order_acquire); }, /*spins=*/8,
                /*yields=*/8);
  EXPECT_TRUE(written.load());
  writer.join();
}
