// The plain-array model against LibTorch itself: autograd gradients, torch::nn::Linear's init,
// BCE with logits, the generators (LibTorch's, and cpu_generator.hpp's copy of its CPU one), and
// torch.save files the loader must refuse.
#include <torch/torch.h>

#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "helpers.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/data/pt_file.hpp"
#include "khsgd/model/model.hpp"
#include "khsgd/torch/cpu_generator.hpp"
#include "khsgd/torch/libtorch_log.hpp"
#include "khsgd/torch/torch_ops.hpp"

using namespace khsgd;
using namespace khsgd_test;

namespace {

std::vector<float> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous().to(torch::kFloat);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

struct Problem {
  int64_t rows = 16, d = 20;
  torch::Tensor X, y, w, b;
  std::vector<float> Xv, yv, theta;
  Problem() {
    torch::manual_seed(7);
    X = torch::randn({rows, d}) * 1.5;
    y = (torch::rand({rows}) < 0.77).to(torch::kFloat);
    w = torch::randn({1, d}) * 0.3;
    b = torch::randn({1}) * 0.3;
    Xv = to_vector(X);
    yv = to_vector(y);
    theta = to_vector(torch::cat({w.reshape({d}), b}));
  }
};

}  // namespace

TEST(Autograd, PerExampleGradientsMatchAutogradOfEachExample) {
  Problem p;
  std::vector<int64_t> rows(p.rows);
  std::iota(rows.begin(), rows.end(), 0);
  std::reverse(rows.begin(), rows.end());
  std::vector<float> G(p.rows * (p.d + 1));
  per_example_gradients(p.Xv.data(), p.yv.data(), rows.data(), p.rows, p.d, p.theta.data(),
                        G.data());
  for (int64_t i = 0; i < p.rows; ++i) {
    const int64_t r = rows[i];
    torch::Tensor w = p.w.clone().requires_grad_(true);
    torch::Tensor b = p.b.clone().requires_grad_(true);
    const torch::Tensor z = torch::nn::functional::linear(p.X[r].view({1, p.d}), w, b).squeeze();
    const torch::Tensor loss = torch::nn::functional::binary_cross_entropy_with_logits(z, p.y[r]);
    const auto grads = torch::autograd::grad({loss}, {w, b});
    const std::vector<float> expected = to_vector(torch::cat({grads[0].reshape({p.d}), grads[1]}));
    for (int64_t j = 0; j <= p.d; ++j)
      EXPECT_NEAR(G[i * (p.d + 1) + j], expected[j], 1e-6 + 1e-6 * std::fabs(expected[j]))
          << "example " << r << " component " << j;
  }
}

TEST(Autograd, MeanLossGradientMatchesAutogradOfTheBatchMean) {
  Problem p;
  std::vector<int64_t> rows(p.rows);
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<float> grad(p.d + 1);
  mean_loss_gradient(p.Xv.data(), p.yv.data(), rows.data(), p.rows, p.d, p.theta.data(),
                     grad.data());
  torch::Tensor w = p.w.clone().requires_grad_(true);
  torch::Tensor b = p.b.clone().requires_grad_(true);
  const torch::Tensor z = torch::nn::functional::linear(p.X, w, b).squeeze();
  const torch::Tensor loss = torch::nn::functional::binary_cross_entropy_with_logits(z, p.y);
  const auto grads = torch::autograd::grad({loss}, {w, b});
  const std::vector<float> expected = to_vector(torch::cat({grads[0].reshape({p.d}), grads[1]}));
  for (int64_t j = 0; j <= p.d; ++j) EXPECT_NEAR(grad[j], expected[j], 1e-6) << j;
}

TEST(Autograd, EvaluateMatchesBinaryCrossEntropyWithLogits) {
  Problem p;
  const Evaluation e = evaluate(p.Xv.data(), p.yv.data(), p.rows, p.d, p.theta.data());
  const torch::Tensor z = torch::nn::functional::linear(p.X, p.w, p.b).squeeze();
  const double loss =
      torch::nn::functional::binary_cross_entropy_with_logits(z, p.y).item<double>();
  const double accuracy =
      ((z > 0).to(torch::kFloat) == p.y).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(e.loss, loss, 1e-6);
  EXPECT_DOUBLE_EQ(e.accuracy, accuracy);
}

TEST(TorchOps, InitIsBitForBitTorchNnLinear) {
  for (const uint64_t seed : {0ull, 1ull, 12345ull}) {
    seed_generators(seed);
    const std::vector<float> theta = init_linear_parameters(20);
    torch::manual_seed(seed);
    torch::nn::Linear linear(20, 1);
    const std::vector<float> expected =
        to_vector(torch::cat({linear->weight.detach().reshape({20}), linear->bias.detach()}));
    EXPECT_EQ(theta, expected) << "seed " << seed;
  }
}

TEST(TorchOps, DrawsAreTheDefaultGeneratorsInOrder) {
  auto ops = make_torch_ops(Device::Cpu);
  seed_generators(5);
  const std::vector<int64_t> perm = ops->randperm(1000);
  const std::vector<float> u = ops->uniform(100, -1, 1);
  torch::manual_seed(5);
  const torch::Tensor expected_perm = torch::randperm(1000, torch::kLong);
  const torch::Tensor expected_u = torch::empty({100}).uniform_(-1, 1);
  EXPECT_TRUE(std::equal(perm.begin(), perm.end(), expected_perm.data_ptr<int64_t>()));
  EXPECT_EQ(u, to_vector(expected_u));
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
}

// TorchOps' CPU randperm draws from LibTorch's generator as torch.randperm does: the same
// permutations and the same generator state after them, from small to the HMDA shard size, several
// in a row (cpu_generator.cpp's copy of the algorithm: TorchDraws below).
TEST(TorchOps, RandpermsInARowAreLibTorchs) {
  auto ops = make_torch_ops(Device::Cpu);
  for (const uint64_t seed : {0, 1, 12345}) {
    seed_generators(seed);
    std::vector<std::vector<int64_t>> ours;
    for (const int64_t m : {1, 2, 3, 17, 1000, 195285, 97642}) ours.push_back(ops->randperm(m));
    const float after = ops->uniform(1, 0, 1)[0];
    torch::manual_seed(seed);
    size_t k = 0;
    for (const int64_t m : {1, 2, 3, 17, 1000, 195285, 97642}) {
      const torch::Tensor expected = torch::randperm(m, torch::kLong);
      ASSERT_EQ(static_cast<int64_t>(ours[k].size()), m);
      EXPECT_TRUE(std::equal(ours[k].begin(), ours[k].end(), expected.data_ptr<int64_t>()))
          << "seed " << seed << ", m " << m;
      ++k;
    }
    EXPECT_EQ(after, torch::empty({1}).uniform_(0, 1).item<float>()) << "seed " << seed;
  }
}

TEST(TorchOps, LogTableIsTorchLogOfFloat32Multiples) {
  auto ops = make_torch_ops(Device::Cpu);
  const double c = 8 * (std::log(50.0) + 1) * (std::log(97632.0) + 1);
  const std::vector<float> table = ops->log_of_multiples(c, 97632);
  const torch::Tensor expected = torch::log(c * torch::arange(1, 97633, torch::kFloat));
  EXPECT_EQ(table, to_vector(expected));
}

namespace {

void save_ivalue(const std::string& path, const c10::IValue& value) {
  const std::vector<char> bytes = torch::pickle_save(value);
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_error(const std::string& path) {
  try {
    read_tensor_tuple(path);
  } catch (const UserError& e) { return e.what(); }
  return "";
}

}  // namespace

namespace {

std::vector<uint8_t> torch_cpu_state() { return generator_state(Device::Cpu); }

}  // namespace

// cpu_generator.hpp against LibTorch's default CPU generator: after the same seed and the same
// draws, the same values and the same torch.get_rng_state() bytes, past several MT19937 refills
// (624 words each) and from seeds above 32 bits.
TEST(TorchDraws, CpuGeneratorIsLibTorchsDefaultGenerator) {
  for (const uint64_t seed : {0ull, 1ull, 5ull, 12345ull, 0x123456789abcull}) {
    CpuGenerator ours(seed);
    torch::manual_seed(seed);
    EXPECT_EQ(ours.state(), torch_cpu_state()) << "seed " << seed << ", fresh";
    for (const int64_t m : {1, 2, 3, 17, 1000, 97642}) {
      const std::vector<int64_t> perm = cpu_randperm(ours, m);
      const torch::Tensor expected = torch::randperm(m, torch::kLong);
      ASSERT_EQ(static_cast<int64_t>(perm.size()), m);
      EXPECT_TRUE(std::equal(perm.begin(), perm.end(), expected.data_ptr<int64_t>()))
          << "seed " << seed << ", randperm " << m;
    }
    for (const auto& [from, to] :
         std::vector<std::pair<double, double>>{{0, 1}, {-1, 1}, {-0.2236, 0.2236}, {-1e-3, 3.7}}) {
      const std::vector<float> u = cpu_uniform(ours, 1500, from, to);
      EXPECT_EQ(u, to_vector(torch::empty({1500}).uniform_(from, to)))
          << "seed " << seed << ", uniform_(" << from << ", " << to << ")";
    }
    // More values than one block of cpu_uniform's draws (4096).
    EXPECT_EQ(cpu_uniform(ours, 9001, -1, 1), to_vector(torch::empty({9001}).uniform_(-1, 1)))
        << "seed " << seed << ", 9001 uniforms";
    EXPECT_EQ(ours.state(), torch_cpu_state()) << "seed " << seed << ", after the draws";
  }
}

// D-RR's permutation drawn into last epoch's vector (cpu_randperm_into: no reallocation, no
// zeroing) is torch.randperm's, whatever the vector held, as it grows and shrinks.
TEST(TorchDraws, RandpermIntoAReusedVectorIsLibTorchs) {
  CpuGenerator ours(3);
  torch::manual_seed(3);
  std::vector<int64_t> reused(50, -1);
  for (const int64_t m : {1000, 17, 97642, 3, 97642, 0}) {
    cpu_randperm_into(ours, m, reused);
    const torch::Tensor expected = torch::randperm(m, torch::kLong);
    ASSERT_EQ(static_cast<int64_t>(reused.size()), m);
    EXPECT_TRUE(std::equal(reused.begin(), reused.end(), expected.data_ptr<int64_t>()))
        << "randperm " << m;
  }
  EXPECT_EQ(ours.state(), torch_cpu_state());
}

// KH-SGD's log table computed without LibTorch (Sleef's logf, or glibc's at ATen's DEFAULT
// capability: libtorch_log.hpp) is torch.log's, bit for bit, for tables of the shapes a run draws.
TEST(TorchDraws, LogTableWithoutLibTorchIsTorchLogs) {
  if (!libtorch_log_without_libtorch())
    GTEST_SKIP() << "this build's LibTorch does not take its logs from Sleef: KH-SGD uses LibTorch";
  for (const auto& [T, E] : std::vector<std::pair<int64_t, int>>{
           {1, 1}, {7, 2}, {1000, 1}, {10005, 3}, {97642, 50}, {250000, 100}}) {
    const double constant =
        (4 / 0.5) * (std::log(static_cast<double>(E)) + 1) * (std::log(static_cast<double>(T)) + 1);
    EXPECT_EQ(libtorch_log_of_multiples(constant, T), torch_cpu_log_of_multiples(constant, T))
        << "T " << T << ", E " << E;
  }
}

// random_block() is random() called count times: the same words and the same state after, for
// blocks that end before, at and past a refill, from a fresh generator and from a restored state.
TEST(TorchDraws, BlocksOfDrawsAreDrawsInARow) {
  CpuGenerator one_by_one(99), in_blocks(99);
  for (const int64_t count : {0, 1, 622, 1, 1, 623, 624, 625, 5000, 3, 1248, 7}) {
    std::vector<uint32_t> expected(static_cast<size_t>(count)), block(static_cast<size_t>(count));
    for (uint32_t& word : expected) word = one_by_one.random();
    in_blocks.random_block(block.data(), count);
    EXPECT_EQ(block, expected) << count;
    EXPECT_EQ(in_blocks.state(), one_by_one.state()) << count;
  }
  CpuGenerator restored(1);
  restored.set_state(one_by_one.state());
  std::vector<uint32_t> block(700);
  restored.random_block(block.data(), 700);
  for (const uint32_t word : block) EXPECT_EQ(word, one_by_one.random());
}

// The largest shards: from 2^32 / 20 items on, LibTorch 2.x shuffles over 64-bit draws and 1.13
// keeps its 32-bit loop; cpu_randperm follows the LibTorch it is built against (1.7 GB each;
// ~20 s, so only where the algorithms part).
TEST(TorchDraws, RandpermOfTheLargestShardsIsLibTorchs) {
  if (TORCH_VERSION_MAJOR < 2) GTEST_SKIP() << "LibTorch 1.x: the 32-bit loop checked above";
  const int64_t m = int64_t{0xffffffff} / 20;
  CpuGenerator ours(7);
  const std::vector<int64_t> perm = cpu_randperm(ours, m);
  torch::manual_seed(7);
  const torch::Tensor expected = torch::randperm(m, torch::kLong);
  EXPECT_TRUE(std::equal(perm.begin(), perm.end(), expected.data_ptr<int64_t>()));
  EXPECT_EQ(ours.state(), torch_cpu_state());
}

TEST(TorchDraws, LinearInitIsTorchNnLinears) {
  for (const uint64_t seed : {0ull, 1ull, 2ull, 3ull, 4ull, 5ull, 12345ull}) {
    for (const int64_t d : {1, 5, 20, 21, 64, 200, 1000}) {
      CpuGenerator ours(seed);
      const std::vector<float> theta = cpu_linear_init(ours, d);
      torch::manual_seed(seed);
      torch::nn::Linear linear(d, 1);
      EXPECT_EQ(
          theta,
          to_vector(torch::cat({linear->weight.detach().reshape({d}), linear->bias.detach()})))
          << "seed " << seed << ", d " << d;
      EXPECT_EQ(ours.state(), torch_cpu_state()) << "seed " << seed << ", d " << d;
    }
  }
}

// LibTorch's baseline kernel (a CPU without AVX2 and FMA, or ATEN_CPU_CAPABILITY=default) rounds
// uniform_'s multiply-add twice, its AVX2 and AVX-512 kernels once: the draw and init tests above,
// run again in a process where LibTorch picks the baseline kernel, pass there too.
TEST(TorchDraws, FollowLibTorchsBaselineKernelToo) {
  if (std::getenv("ATEN_CPU_CAPABILITY") != nullptr) GTEST_SKIP() << "the run this test starts";
  std::string self(4096, '\0');  // this test binary
  const ssize_t length = readlink("/proc/self/exe", self.data(), self.size() - 1);
  ASSERT_GT(length, 0);
  self.resize(static_cast<size_t>(length));
  const std::string run = "ATEN_CPU_CAPABILITY=default '" + self +
                          "' --gtest_filter='TorchDraws.CpuGenerator*:TorchDraws.LinearInit*:"
                          "TorchDraws.LogTable*'";
  EXPECT_EQ(std::system(run.c_str()), 0) << run;
  // ATen's AVX2 kernels (Sleef's 8-lane logs) where the CPU has AVX-512 and would take those.
  const std::string avx2 =
      "ATEN_CPU_CAPABILITY=avx2 '" + self + "' --gtest_filter='TorchDraws.LogTable*'";
  EXPECT_EQ(std::system(avx2.c_str()), 0) << avx2;
}

// A state taken from either generator restores in the other: checkpoints written by khsgd_train
// (cpu_generator.hpp) and by earlier khsgd_train_run builds (LibTorch's) resume in both.
TEST(TorchDraws, StatesRestoreAcrossLibTorchAndCpuGenerator) {
  torch::manual_seed(3);
  (void)torch::randperm(5000, torch::kLong);
  CpuGenerator ours;
  ours.set_state(torch_cpu_state());
  const std::vector<float> expected = to_vector(torch::empty({700}).uniform_(0, 1));
  EXPECT_EQ(cpu_uniform(ours, 700, 0, 1), expected);

  CpuGenerator other(9);
  (void)cpu_randperm(other, 777);
  const std::vector<uint8_t> bytes = other.state();
  set_generator_state(Device::Cpu, 0, bytes);
  EXPECT_EQ(to_vector(torch::empty({700}).uniform_(0, 1)), cpu_uniform(other, 700, 0, 1));

  // What LibTorch refuses (and what khsgd never writes) is refused.
  std::vector<uint8_t> bad = bytes;
  bad.pop_back();
  EXPECT_THROW(ours.set_state(bad), std::invalid_argument);
  bad = bytes;
  std::fill(bad.begin() + 8, bad.begin() + 12, 0);  // left = 0
  EXPECT_THROW(ours.set_state(bad), std::invalid_argument);
  bad = bytes;
  bad[5040] = 1;  // a cached double normal sample
  EXPECT_THROW(ours.set_state(bad), std::invalid_argument);
}

TEST(Loader, RefusesWhatIsNotATupleOfFloatTensors) {
  TempDir dir;
  const std::string path = dir / "file.pt";
  save_ivalue(path, torch::ones({3}));
  EXPECT_NE(read_error(path).find("holds a Tensor, expected a tuple of tensors"), std::string::npos)
      << read_error(path);
  save_ivalue(path, c10::ivalue::Tuple::create({torch::ones({3}), c10::IValue(int64_t{4})}));
  EXPECT_NE(read_error(path).find("tuple element 1 is a Int, expected a tensor"), std::string::npos)
      << read_error(path);
  save_ivalue(path, c10::ivalue::Tuple::create({torch::ones({3}, torch::kLong)}));
  EXPECT_NE(read_error(path).find("tensor 0 has dtype Long, expected float32"), std::string::npos)
      << read_error(path);
  save_ivalue(path, c10::ivalue::Tuple::create({torch::ones({2, 2}, torch::kDouble) * 0.25}));
  const auto read = read_tensor_tuple(path);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].dtype, "float64");
  EXPECT_EQ(read[0].values, std::vector<float>(4, 0.25f));
}
