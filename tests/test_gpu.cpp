// The GPU path (ctest label "gpu"). Built in every build against LibTorch (tests/CMakeLists.txt);
// each test skips, saying why, where the build has no CUDA engine or no GPU is visible (and fails
// instead where KHSGD_REQUIRE_GPU is set, as scripts/gpu-check.sh does).
//
//   GoldenGpu      the reference's H200 runs (random numbers from the CUDA generator)
//   KernelChecks   each kernel against the CPU code on the same inputs, D = 5, 21 and 200: the
//                  pair-balance kernels (registers, registers<4>, shared memory); and at D = 64
//                  too, the epoch kernel with the pass beside the steps, the per-step kernels, the
//                  evaluation
//   GpuEngine      whole GPU runs: CD-GraB's orders and saved gradients against the CPU's, and a
//                  stopped run resumed against the uninterrupted one
//   GpuSorters     the CUDA sorters against the CPU ones through the public interface
//   GpuBackends    Gloo with two ranks on one GPU, NCCL alone and with one GPU per rank, refusals,
//                  and lost ranks (one line, exit status 3)
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <random>

#include "helpers.hpp"
#include "khsgd/comm/comm.hpp"
#include "khsgd/data/data.hpp"
#include "khsgd/engine/engine.hpp"
#include "khsgd/sorting/pair_walk.hpp"
#include "khsgd/sorting/sorter_registry.hpp"
#include "khsgd/torch/torch_ops.hpp"
#include "two_ranks.hpp"
#ifdef KHSGD_WITH_CUDA
#include "pair_kernel_runner.hpp"
#endif

using namespace khsgd_test;

namespace {

#ifdef KHSGD_WITH_CUDA
bool build_has_backend(const std::string& backend) {
  TempDir probe;
  return run_train({"--version"}, probe.path()).out.find(backend) != std::string::npos;
}
#endif

// Why a test cannot run here (empty when it can): it needs a CUDA build, `gpus` visible GPUs and,
// when named, a backend this build has. `too_few_gpus`: only the machine's GPU count is short.
struct Lack {
  std::string why;
  bool too_few_gpus = false;
};

Lack missing(const std::string& backend = "", int gpus = 1) {
#ifndef KHSGD_WITH_CUDA
  (void)backend;
  (void)gpus;
  return {"this build has no CUDA engine (its LibTorch has no CUDA)"};
#else
  const int visible = khsgd::cuda_available() ? khsgd::cuda_device_count() : 0;
  if (visible == 0) return {"no GPU visible"};
  if (!backend.empty() && !build_has_backend(backend))
    return {"this build has no " + backend + " backend (" +
            (backend == "nccl" ? "nccl.h" : "Gloo's headers") + " not found)"};
  if (visible < gpus)
    return {std::to_string(gpus) + " " + backend + " ranks need " + std::to_string(gpus) +
                " GPUs; this machine has " + std::to_string(visible),
            /*too_few_gpus=*/true};
  return {};
#endif
}

// On the GPU machine (scripts/gpu-check.sh sets KHSGD_REQUIRE_GPU=1) a missing CUDA engine, GPU or
// backend fails the test: a skip there would read as a pass. Too few GPUs still skips.
bool gpu_required() {
  const char* value = std::getenv("KHSGD_REQUIRE_GPU");
  return value != nullptr && value[0] != '\0' && std::string(value) != "0";
}

#define SKIP_UNLESS_RUNNABLE(...)                                              \
  do {                                                                         \
    const Lack lack = missing(__VA_ARGS__);                                    \
    if (lack.why.empty()) break;                                               \
    if (gpu_required() && !lack.too_few_gpus)                                  \
      FAIL() << lack.why << " (KHSGD_REQUIRE_GPU is set: this must run here)"; \
    GTEST_SKIP() << lack.why;                                                  \
  } while (0)

std::vector<std::string> golden_args(const TempDir& tmp, const std::string& sorter,
                                     const std::string& device) {
  std::vector<std::string> args = golden_flags(tmp, sorter, /*epochs=*/3, device);
  args.insert(args.end(), {"--B", "16"});
  return args;
}

std::string run_dir(const TempDir& tmp, const std::string& sorter, int ranks) {
  return golden_run_dir(tmp, sorter, ranks, /*epochs=*/3);
}

void expect_metrics_near(const Csv& ours, const Csv& reference) {
  ASSERT_EQ(ours.rows.size(), reference.rows.size());
  for (size_t e = 0; e < ours.rows.size(); ++e) {
    for (const char* loss : {"train_loss", "test_loss"})
      EXPECT_NEAR(ours.at(e, loss), reference.at(e, loss), 1e-4) << loss << " epoch " << e + 1;
    for (const char* acc : {"train_acc", "test_acc"})
      EXPECT_NEAR(ours.at(e, acc), reference.at(e, acc), 5e-4) << acc << " epoch " << e + 1;
  }
}

// A finished run in `tmp` against a golden folder: metrics within tolerance, orders identical.
void expect_golden(const TempDir& tmp, const std::string& sorter, int ranks,
                   const std::string& golden) {
  expect_metrics_near(read_csv(run_dir(tmp, sorter, ranks) + "/metrics.csv"),
                      read_csv(test_data(golden + "/metrics.csv")));
  for (int rank = 0; rank < ranks; ++rank) {
    const std::string name = "/orders-rank" + std::to_string(rank) + ".csv";
    const auto ours = read_orders(run_dir(tmp, sorter, ranks) + name);
    const auto reference = read_orders(test_data(golden + name + ".gz"));
    ASSERT_EQ(ours.size(), reference.size());
    for (size_t e = 0; e < ours.size(); ++e)
      EXPECT_EQ(ours[e], reference[e]) << "rank " << rank << " epoch " << e + 1;
  }
}

class GoldenGpu : public ::testing::TestWithParam<std::string> {};

}  // namespace

// One rank on the GPU reproduces the reference's H200 run: random numbers from the CUDA generator.
TEST_P(GoldenGpu, MatchesReferenceOnTheGpu) {
  SKIP_UNLESS_RUNNABLE();
  const std::string sorter = GetParam();
  TempDir tmp;
  const RunResult r = run_train(golden_args(tmp, sorter, "cuda"), tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_golden(tmp, sorter, 1, "golden/gpu/n1-" + sorter);
}

INSTANTIATE_TEST_SUITE_P(AllSorters, GoldenGpu,
                         ::testing::Values("CD-GraB", "D-RR", "KH-SGD", "SBW"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

// CD-GraB draws no random numbers, so the GPU engine must follow the CPU engine's orders, and the
// per-example gradients it saves (--save_grads, copied back from the device) are the CPU's within
// float rounding.
TEST(GpuEngine, FollowsTheCpuEngineWhereNoRandomNumbersAreDrawn) {
  SKIP_UNLESS_RUNNABLE();
  TempDir gpu, cpu;
  auto with_grads = [](std::vector<std::string> args) {
    args.insert(args.end(), {"--save_grads", "1,3"});
    return args;
  };
  ASSERT_EQ(run_train(with_grads(golden_args(gpu, "CD-GraB", "cuda")), gpu.path()).exit_code, 0);
  ASSERT_EQ(run_train(with_grads(golden_args(cpu, "CD-GraB", "cpu")), cpu.path()).exit_code, 0);
  const Csv g = read_csv(run_dir(gpu, "CD-GraB", 1) + "/metrics.csv");
  const Csv c = read_csv(run_dir(cpu, "CD-GraB", 1) + "/metrics.csv");
  for (size_t e = 0; e < 3; ++e) EXPECT_NEAR(g.at(e, "train_loss"), c.at(e, "train_loss"), 1e-6);
  EXPECT_EQ(read_file(run_dir(gpu, "CD-GraB", 1) + "/orders-rank0.csv"),
            read_file(run_dir(cpu, "CD-GraB", 1) + "/orders-rank0.csv"));
  for (const std::string name : {"/grads-epoch1.pt", "/grads-epoch3.pt"}) {
    auto load = [&](const TempDir& tmp) {
      const std::string bytes = read_file(run_dir(tmp, "CD-GraB", 1) + name);
      return torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toTensor();
    };
    const torch::Tensor from_gpu = load(gpu), from_cpu = load(cpu);
    ASSERT_EQ(from_cpu.sizes(), (std::vector<int64_t>{20000, 21})) << name;  // [N', d + 1]
    ASSERT_EQ(from_gpu.sizes(), from_cpu.sizes()) << name;
    EXPECT_TRUE(torch::allclose(from_gpu, from_cpu, /*rtol=*/1e-4, /*atol=*/1e-5))
        << name << ": largest difference " << (from_gpu - from_cpu).abs().max().item<float>();
  }
}

// A GPU run stopped after epoch 1 and resumed ends as the uninterrupted run: the checkpoint
// carries the CUDA generator's state, so D-RR's permutations, SBW's tables and KH-SGD's redraws
// go on as they would have.
TEST(GpuEngine, AStoppedRunResumesBitForBit) {
  SKIP_UNLESS_RUNNABLE();
  for (const std::string sorter : {"D-RR", "SBW", "KH-SGD"}) {
    SCOPED_TRACE(sorter);
    auto args = [&](const TempDir& tmp, std::vector<std::string> extra) {
      return golden_run_args(tmp, sorter, std::move(extra), /*epochs=*/3, "cuda");
    };
    TempDir whole, tmp;
    ASSERT_EQ(run_train(args(whole, {}), whole.path()).exit_code, 0);
    const RunResult stopped = run_train(args(tmp, {}), tmp.path(), "KHSGD_STOP_AFTER_EPOCH=1");
    ASSERT_EQ(stopped.exit_code, 9) << stopped.err;
    const RunResult resumed = run_train(args(tmp, {"--resume"}), tmp.path());
    ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
    EXPECT_NE(resumed.out.find("resuming after epoch 1"), std::string::npos) << resumed.out;
    expect_same_run(run_dir(tmp, sorter, 1), run_dir(whole, sorter, 1), 1);
  }
}

#ifdef KHSGD_WITH_CUDA
namespace {

using khsgd::PairRule;

// A pass over two epochs' worth of pairs: random gradients (one pair identical, bsq = 0), a
// shuffled order, a running sum and SBW's counter already under way, tables drawn as the sorters
// draw them (thresholds of both signs around the dot products' size).
PairPassData random_pass(PairRule rule, int64_t D, std::mt19937* random) {
  PairPassData data;
  data.rule = rule;
  data.layout.ranks = 2;
  data.layout.shard_rows = 64;
  data.layout.microbatch = 4;
  data.layout.D = D;
  const int64_t m = data.layout.shard_rows, n = data.layout.ranks, T = n * m / 2;
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t j = 0; j < n; ++j) {
    std::vector<int64_t> order(m);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), *random);
    data.orders.insert(data.orders.end(), order.begin(), order.end());
  }
  data.next_orders.assign(n * m, -1);
  for (int64_t c = 0; c < D; ++c) data.sum.push_back(0.1f * normal(*random));
  for (int64_t t = 0; t < 3 * T; ++t)
    data.thresholds.push_back(2.0f * std::sqrt(float(D)) * normal(*random));
  const double constant = 8 * (std::log(3.0) + 1) * (std::log(static_cast<double>(T)) + 1);
  for (int64_t t = 1; t <= T; ++t)
    data.log_penalty.push_back(std::log(static_cast<float>(constant) * t));
  for (int64_t t = 0; t < T; ++t) data.uniforms.push_back(uniform(*random));
  data.cursor.decision = rule == PairRule::SBW ? 10 : 0;
  data.cursor.right = m - 1;
  return data;
}

// `steps` steps of random gradients [steps, ranks, microbatch, D]; in the first step, rank 1's
// first pair is two identical rows (bsq = 0, the reference's IEEE corner).
std::vector<float> random_gradients(const khsgd::PairLayout& layout, int64_t steps,
                                    std::mt19937* random) {
  std::normal_distribution<float> normal;
  std::vector<float> G(steps * layout.ranks * layout.microbatch * layout.D);
  for (float& g : G) g = normal(*random);
  const int64_t D = layout.D, row = (1 * layout.microbatch + 0) * D;
  std::copy(&G[row], &G[row + D], &G[row + D]);
  return G;
}

// The CPU's walk over the same data (what the CPU sorters run).
void walk_on_host(int64_t first_step, int64_t steps, PairPassData* data) {
  khsgd::PairRuleTables tables;
  tables.rule = data->rule;
  tables.thresholds = data->thresholds.data();
  tables.log_penalty = data->log_penalty.data();
  tables.uniforms = data->uniforms.data();
  std::vector<float> delta(data->layout.D);
  khsgd::HostPairRows rows(data->gradients.data(), data->layout, data->sum.data(), delta.data());
  khsgd::walk_pairs(rows, tables, data->layout, first_step, steps, data->orders.data(),
                    data->next_orders.data(), &data->cursor);
}

const char* kernel_name(PairKernelChoice kernel) {
  return kernel == PairKernelChoice::Registers1   ? "registers"
         : kernel == PairKernelChoice::Registers4 ? "registers<4>"
                                                  : "shared memory";
}

}  // namespace

namespace {

// A random data set with d features (labels about 70 % ones).
khsgd::Dataset random_dataset(int64_t d, int64_t n_train, int64_t n_test, uint64_t seed) {
  torch::manual_seed(seed);
  auto values = [](const torch::Tensor& t) {
    const torch::Tensor c = t.contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  };
  khsgd::Dataset data;
  data.d = d;
  data.n_train = n_train;
  data.n_test = n_test;
  const std::vector<float> train_x = values(torch::randn({n_train, d}));
  data.train_x.assign(train_x.begin(), train_x.end());
  data.train_y = values((torch::rand({n_train}) < 0.7).to(torch::kFloat));
  data.test_x = values(torch::randn({n_test, d}));
  data.test_y = values((torch::rand({n_test}) < 0.7).to(torch::kFloat));
  data.source = "random";
  return data;
}

double max_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double most = 0.0;
  for (size_t i = 0; i < a.size(); ++i) most = std::max(most, std::fabs(double(a[i]) - b[i]));
  return most;
}

// The CPU engine with a CPU sorter and the CUDA engine with its CUDA twin, side by side over
// `epochs` epochs on the same data; the sorters' tables come from the same generator state.
struct TwinRuns {
  khsgd::Dataset data;
  khsgd::EngineSetup setup;
  std::unique_ptr<khsgd::DeviceOps> ops = khsgd::make_torch_ops(khsgd::Device::Cpu);
  std::unique_ptr<khsgd::Communicator> solo = khsgd::make_solo_communicator();
  std::unique_ptr<khsgd::TrainingEngine> cpu_engine, gpu_engine;
  std::unique_ptr<khsgd::Sorter> cpu_sorter, gpu_sorter;

  TwinRuns(int64_t D, const std::string& sorter, int64_t epochs)
      : data(random_dataset(D - 1, 640, 160, D)) {
    setup.data = &data;
    setup.partition = khsgd::plan_partition(data.n_train, data.d, 16, 1);
    std::mt19937 random(static_cast<uint32_t>(D));
    std::normal_distribution<float> normal(0.0f, 0.1f);
    for (int64_t j = 0; j < D; ++j) setup.theta.push_back(normal(random));
    setup.lr = 5e-2;
    cpu_engine = khsgd::make_cpu_engine(setup);
    gpu_engine = khsgd::make_cuda_engine(setup, 0);
    khsgd::SorterShape shape;
    shape.geometry() = setup.partition.geometry();
    shape.epochs = epochs;
    khsgd::seed_generators(7);
    cpu_sorter = khsgd::make_sorter(sorter, shape, *ops);
    shape.device = khsgd::Device::Cuda;
    khsgd::seed_generators(7);
    gpu_sorter = khsgd::make_sorter(sorter, shape, *ops);
  }

  // Both sorters' next order, drawn from the same generator state (D-RR, KH-SGD's redraws).
  std::pair<std::vector<int64_t>, std::vector<int64_t>> sort(int epoch) {
    khsgd::seed_generators(100 + epoch);
    std::vector<int64_t> cpu = cpu_sorter->sort();
    khsgd::seed_generators(100 + epoch);
    return {cpu, gpu_sorter->sort()};
  }
};

}  // namespace

#endif  // KHSGD_WITH_CUDA

// The pair-balance kernels make the CPU walk's decisions: the same next orders, running sum and
// cursor, over two launches (the state carries from one to the next).
TEST(KernelChecks, PairKernelsMakeTheCpuWalksDecisions) {
  SKIP_UNLESS_RUNNABLE();
#ifdef KHSGD_WITH_CUDA
  for (const int64_t D : {5, 21, 200}) {
    std::vector<PairKernelChoice> kernels = {PairKernelChoice::SharedMemory};
    if (D <= 32) kernels.push_back(PairKernelChoice::Registers1);
    if (D <= 128) kernels.push_back(PairKernelChoice::Registers4);
    for (const PairRule rule : {PairRule::CDGraB, PairRule::SBW, PairRule::KHSGD}) {
      for (const PairKernelChoice kernel : kernels) {
        SCOPED_TRACE("D " + std::to_string(D) + ", rule " + std::to_string(static_cast<int>(rule)) +
                     ", " + kernel_name(kernel) + " kernel");
        std::mt19937 random(static_cast<uint32_t>(D * 10 + static_cast<int>(rule)));
        PairPassData cpu = random_pass(rule, D, &random);
        for (const int64_t first_step : {0, 8}) {
          cpu.gradients = random_gradients(cpu.layout, 8, &random);
          PairPassData gpu = cpu;
          walk_on_host(first_step, 8, &cpu);
          run_pair_kernel(kernel, first_step, 8, &gpu);
          ASSERT_EQ(gpu.next_orders, cpu.next_orders) << "from step " << first_step;
          ASSERT_EQ(gpu.sum, cpu.sum);
          EXPECT_EQ(gpu.cursor.tau, cpu.cursor.tau);
          EXPECT_EQ(gpu.cursor.decision, cpu.cursor.decision);
          EXPECT_EQ(gpu.cursor.left, cpu.cursor.left);
          EXPECT_EQ(gpu.cursor.right, cpu.cursor.right);
        }
      }
    }
  }
#endif
}

// The epoch kernel (with the pair pass beside the steps where D <= 128: registers at D = 5 and 21,
// registers<4> at D = 64), the per-step kernels
// (--profile), the pass after the steps (D = 200) and the evaluation against the CPU engine and
// sorters: the same orders every epoch, parameters within float rounding, the same predictions.
TEST(KernelChecks, EngineKernelsFollowTheCpuEngine) {
  SKIP_UNLESS_RUNNABLE();
#ifdef KHSGD_WITH_CUDA
  const int epochs = 3;
  for (const int64_t D : {5, 21, 64, 200}) {
    for (const std::string sorter : {"D-RR", "CD-GraB", "SBW", "KH-SGD"}) {
      for (const bool profile : {false, true}) {
        SCOPED_TRACE("D " + std::to_string(D) + ", " + sorter + (profile ? ", --profile" : ""));
        TwinRuns twins(D, sorter, epochs);
        khsgd::EpochHooks hooks;
        hooks.profile = profile;
        for (int epoch = 1; epoch <= epochs; ++epoch) {
          const auto [cpu_order, gpu_order] = twins.sort(epoch);
          ASSERT_EQ(gpu_order, cpu_order) << "epoch " << epoch;
          if (epoch == epochs) break;  // the last sort() shows what the last epoch's pass decided
          twins.cpu_engine->train_epoch(cpu_order, *twins.cpu_sorter, *twins.solo,
                                        khsgd::EpochHooks{});
          twins.gpu_engine->train_epoch(gpu_order, *twins.gpu_sorter, *twins.solo, hooks);
          EXPECT_LE(max_difference(twins.gpu_engine->parameters(), twins.cpu_engine->parameters()),
                    1e-5);
          EXPECT_LE(max_difference(twins.gpu_engine->velocity(), twins.cpu_engine->velocity()),
                    1e-5);
          const auto [cpu_train, cpu_test] = twins.cpu_engine->evaluate();
          const auto [gpu_train, gpu_test] = twins.gpu_engine->evaluate();
          EXPECT_EQ(gpu_train.correct, cpu_train.correct);
          EXPECT_EQ(gpu_test.correct, cpu_test.correct);
          EXPECT_NEAR(gpu_train.loss, cpu_train.loss, 1e-6 * cpu_train.loss);
          EXPECT_NEAR(gpu_test.loss, cpu_test.loss, 1e-6 * cpu_test.loss);
        }
      }
    }
  }
#endif
}

// The CUDA pair sorters make the CPU sorters' decisions on the same gradients, tables drawn from
// the same (CPU) generator state.
TEST(GpuSorters, MakeTheCpuSortersDecisions) {
  SKIP_UNLESS_RUNNABLE();
  khsgd::SorterShape shape;
  shape.ranks = 2;
  shape.shard_rows = 64;
  shape.microbatch = 4;
  shape.D = 21;
  shape.epochs = 3;
  const int64_t steps = shape.shard_rows / shape.microbatch;
  for (const std::string name : {"CD-GraB", "SBW", "KH-SGD"}) {
    for (int64_t rank = 0; rank < 2; ++rank) {
      shape.rank = rank;
      auto cpu_ops = khsgd::make_torch_ops(khsgd::Device::Cpu);
      khsgd::seed_generators(3);
      khsgd::SorterShape cpu_shape = shape;
      auto cpu_sorter = khsgd::make_sorter(name, cpu_shape, *cpu_ops);
      khsgd::seed_generators(3);
      khsgd::SorterShape gpu_shape = shape;
      gpu_shape.device = khsgd::Device::Cuda;
      auto gpu_sorter = khsgd::make_sorter(name, gpu_shape, *cpu_ops);
      torch::manual_seed(11);
      for (int epoch = 0; epoch < 3; ++epoch) {
        khsgd::seed_generators(100 + epoch);  // KH-SGD redraws: same state for both
        const auto cpu_order = cpu_sorter->sort();
        khsgd::seed_generators(100 + epoch);
        const auto gpu_order = gpu_sorter->sort();
        ASSERT_EQ(cpu_order, gpu_order) << name << " rank " << rank << " epoch " << epoch;
        const torch::Tensor G = torch::randn({steps, shape.ranks, shape.microbatch, shape.D});
        cpu_sorter->balance(G.data_ptr<float>(), 0, steps);
        const torch::Tensor G_gpu = G.to(torch::kCUDA);
        gpu_sorter->balance(G_gpu.data_ptr<float>(), 0, steps);
      }
    }
  }
}

TEST(GpuBackends, GlooRunsSeveralRanksOnOneGpu) {
  SKIP_UNLESS_RUNNABLE("gloo");
  TempDir tmp;
  std::vector<std::string> args = golden_args(tmp, "CD-GraB", "cuda");
  args.insert(args.end(), {"--backend", "gloo"});
  const RunResult r = run_launch(2, args, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_golden(tmp, "CD-GraB", 2, "golden/cpu/n2-CD-GraB");
}

TEST(GpuBackends, NcclWithMoreRanksThanGpusIsAClearError) {
  SKIP_UNLESS_RUNNABLE();
  const int gpus = khsgd::cuda_device_count();
  TempDir tmp;
  std::vector<std::string> args = golden_args(tmp, "D-RR", "cuda");
  args.insert(args.end(), {"--backend", "nccl"});
  const RunResult r = run_launch(gpus + 1, args, tmp.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("use --backend gloo to run several ranks per GPU"), std::string::npos)
      << r.err;
  EXPECT_FALSE(file_exists(tmp / "results"));
}

// One rank alone with --backend nccl opens a real ProcessGroupNCCL, as the reference did under
// torchrun --nproc_per_node=1 (its H200 goldens are such runs): NCCL's own log shows the
// communicator, and the run matches the goldens. As a plain process (in-process store) and under
// the launcher (TCPStore).
TEST(GpuBackends, NcclAloneOpensAProcessGroup) {
  SKIP_UNLESS_RUNNABLE("nccl");
  for (const bool launched : {false, true}) {
    SCOPED_TRACE(launched ? "scripts/launch.sh 1" : "plain process");
    TempDir tmp;
    std::vector<std::string> args = golden_args(tmp, "SBW", "cuda");
    args.insert(args.end(), {"--backend", "nccl"});
    const RunResult r = launched ? run_launch(1, args, tmp.path(), "NCCL_DEBUG=INFO")
                                 : run_train(args, tmp.path(), "NCCL_DEBUG=INFO");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE((r.out + r.err).find("NCCL INFO"), std::string::npos) << "NCCL never initialised:\n"
                                                                    << r.err;
    EXPECT_NE(read_file(run_dir(tmp, "SBW", 1) + "/config.json").find("\"backend\": \"nccl\""),
              std::string::npos);
    expect_golden(tmp, "SBW", 1, "golden/gpu/n1-SBW");
  }
}

// Two ranks, one GPU each, over NCCL: CD-GraB draws no random numbers, so the CPU goldens hold.
TEST(GpuBackends, NcclTwoRanksOnTwoGpus) {
  SKIP_UNLESS_RUNNABLE("nccl", 2);
  TempDir tmp;
  std::vector<std::string> args = golden_args(tmp, "CD-GraB", "cuda");
  args.insert(args.end(), {"--backend", "nccl"});
  const RunResult r = run_launch(2, args, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_golden(tmp, "CD-GraB", 2, "golden/cpu/n2-CD-GraB");
}

// A killed rank while the survivor's collective runs on GPU memory (staged through Gloo): one line
// naming it, exit status 3. This is the path NCCL takes too, where one GPU cannot hold two NCCL
// ranks.
TEST(GpuBackends, ALostRankUnderGlooOnTheGpuIsNamed) {
  SKIP_UNLESS_RUNNABLE("gloo");
  TwoRanks job;
  job.device_flags = {"--device", "cuda", "--backend", "gloo"};
  expect_killed_rank_named(job);
}

// Under NCCL, PyTorch's watchdog would abort the survivor; with blocking wait its collective
// throws instead, so the survivor still ends with one line and exit status 3.
TEST(GpuBackends, ALostRankUnderNcclIsNamed) {
  SKIP_UNLESS_RUNNABLE("nccl", 2);
  TwoRanks job;
  job.device_flags = {"--device", "cuda", "--backend", "nccl"};
  expect_killed_rank_named(job);
}
