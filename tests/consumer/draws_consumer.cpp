// Uses the installed khsgd::torch_draws: D-RR's first epoch through make_torch_ops() is the
// permutation LibTorch's randperm draws after the same seed (khsgd_train's golden tests check the
// bits against the reference; this checks that a consumer gets them through the package).
#include <khsgd/khsgd_sorters.hpp>
#include <khsgd/torch/torch_ops.hpp>

#include <iostream>

int main() {
  khsgd::SorterShape shape;
  shape.shard_rows = 10;
  shape.microbatch = 2;
  shape.D = 3;
  khsgd::seed_generators(0);
  auto ops = khsgd::make_torch_ops(khsgd::Device::Cpu);
  auto sorter = khsgd::make_sorter("D-RR", shape, *ops);
  const std::vector<int64_t> order = sorter->sort();
  khsgd::seed_generators(0);
  const std::vector<int64_t> direct = khsgd::make_torch_ops(khsgd::Device::Cpu)->randperm(10);
  std::cout << "D-RR epoch 1 is randperm(10) after seed 0: " << (order == direct ? "yes" : "no")
            << "\n";
  return order == direct ? 0 : 1;
}
