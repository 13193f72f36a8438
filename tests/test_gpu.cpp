// The GPU path (ctest label "gpu", built only against a CUDA LibTorch): the reference's H200
// numbers, the CUDA sorters against their CPU twins, and the backends on one GPU.
#include <torch/torch.h>

#include "helpers.hpp"
#include "khsgd/engine.hpp"
#include "khsgd/sorters.hpp"
#include "khsgd/torch_ops.hpp"

using namespace khsgd_test;

namespace {

bool have_gpu() { return khsgd::cuda_available(); }

std::vector<std::string> golden_args(const TempDir& tmp, const std::string& sorter,
                                     const std::string& device) {
  return {"--sorter", sorter, "--seed", "1", "--lr", "5e-3", "--B", "16", "--epochs", "3",
          "--device", device, "--data_dir", test_data("golden/data"), "--results_dir",
          tmp / "results", "--save_orders"};
}

std::string run_dir(const TempDir& tmp, const std::string& sorter, int ranks) {
  return tmp / ("results/LR-HMDA-3/LR-hmda-" + sorter + "-node-" + std::to_string(ranks) +
                "-lr-0.005-B-16-seed-1");
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

class GoldenGpu : public ::testing::TestWithParam<std::string> {};

}  // namespace

// One rank on the GPU reproduces the reference's H200 run: random numbers from the CUDA generator.
TEST_P(GoldenGpu, MatchesReferenceOnTheGpu) {
  if (!have_gpu()) GTEST_SKIP() << "no GPU visible";
  const std::string sorter = GetParam();
  TempDir tmp;
  const RunResult r = run_train(golden_args(tmp, sorter, "cuda"), tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string golden = test_data("golden/gpu/n1-" + sorter);
  expect_metrics_near(read_csv(run_dir(tmp, sorter, 1) + "/metrics.csv"), read_csv(golden + "/metrics.csv"));
  const auto ours = read_orders(run_dir(tmp, sorter, 1) + "/orders-rank0.csv");
  const auto reference = read_orders(golden + "/orders-rank0.csv.gz");
  ASSERT_EQ(ours.size(), reference.size());
  for (size_t e = 0; e < ours.size(); ++e) EXPECT_EQ(ours[e], reference[e]) << "epoch " << e + 1;
}

INSTANTIATE_TEST_SUITE_P(AllSorters, GoldenGpu,
                         ::testing::Values("CD-GraB", "D-RR", "KH-SGD", "SBW"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& c : name)
                             if (c == '-') c = '_';
                           return name;
                         });

// CD-GraB draws no random numbers, so the GPU engine must follow the CPU engine's orders.
TEST(GpuEngine, FollowsTheCpuEngineWhereNoRandomNumbersAreDrawn) {
  if (!have_gpu()) GTEST_SKIP() << "no GPU visible";
  TempDir gpu, cpu;
  ASSERT_EQ(run_train(golden_args(gpu, "CD-GraB", "cuda"), gpu.path()).exit_code, 0);
  ASSERT_EQ(run_train(golden_args(cpu, "CD-GraB", "cpu"), cpu.path()).exit_code, 0);
  const Csv g = read_csv(run_dir(gpu, "CD-GraB", 1) + "/metrics.csv");
  const Csv c = read_csv(run_dir(cpu, "CD-GraB", 1) + "/metrics.csv");
  for (size_t e = 0; e < 3; ++e) EXPECT_NEAR(g.at(e, "train_loss"), c.at(e, "train_loss"), 1e-6);
  EXPECT_EQ(read_file(run_dir(gpu, "CD-GraB", 1) + "/orders-rank0.csv"),
            read_file(run_dir(cpu, "CD-GraB", 1) + "/orders-rank0.csv"));
}

// The CUDA pair sorters make the CPU sorters' decisions on the same gradients, tables drawn from
// the same (CPU) generator state.
TEST(GpuSorters, MakeTheCpuSortersDecisions) {
  if (!have_gpu()) GTEST_SKIP() << "no GPU visible";
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
        cpu_sorter->balance_epoch(G.data_ptr<float>(), steps);
        const torch::Tensor G_gpu = G.to(torch::kCUDA);
        gpu_sorter->balance_epoch(G_gpu.data_ptr<float>(), steps);
      }
    }
  }
}

TEST(GpuBackends, GlooRunsSeveralRanksOnOneGpu) {
  if (!have_gpu()) GTEST_SKIP() << "no GPU visible";
  TempDir probe;
  if (run_train({"--version"}, probe.path()).out.find("gloo") == std::string::npos)
    GTEST_SKIP() << "this build has no Gloo (its headers were not found)";
  TempDir tmp;
  std::vector<std::string> args = golden_args(tmp, "CD-GraB", "cuda");
  args.push_back("--backend");
  args.push_back("gloo");
  const RunResult r = run_launch(2, args, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_metrics_near(read_csv(run_dir(tmp, "CD-GraB", 2) + "/metrics.csv"),
                      read_csv(test_data("golden/cpu/n2-CD-GraB/metrics.csv")));
  for (int rank = 0; rank < 2; ++rank)
    EXPECT_EQ(read_orders(run_dir(tmp, "CD-GraB", 2) + "/orders-rank" + std::to_string(rank) + ".csv"),
              read_orders(test_data("golden/cpu/n2-CD-GraB/orders-rank" + std::to_string(rank) + ".csv.gz")));
}

TEST(GpuBackends, NcclWithMoreRanksThanGpusIsAClearError) {
  if (!have_gpu()) GTEST_SKIP() << "no GPU visible";
  const int gpus = khsgd::cuda_device_count();
  TempDir tmp;
  std::vector<std::string> args = golden_args(tmp, "D-RR", "cuda");
  args.push_back("--backend");
  args.push_back("nccl");
  const RunResult r = run_launch(gpus + 1, args, tmp.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("use --backend gloo to run several ranks per GPU"), std::string::npos) << r.err;
  EXPECT_FALSE(file_exists(tmp / "results"));
}

TEST(GpuBackends, NcclOneRankPerGpu) {
  if (!have_gpu()) GTEST_SKIP() << "no GPU visible";
  TempDir probe;
  if (run_train({"--version"}, probe.path()).out.find("nccl") == std::string::npos)
    GTEST_SKIP() << "this build has no NCCL backend";
  const int gpus = khsgd::cuda_device_count();
  TempDir tmp;
  std::vector<std::string> args = golden_args(tmp, "SBW", "cuda");
  args.push_back("--backend");
  args.push_back("nccl");
  const RunResult r = run_launch(gpus >= 2 ? 2 : 1, args, tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_csv(run_dir(tmp, "SBW", gpus >= 2 ? 2 : 1) + "/metrics.csv").rows.size(), 3u);
}
