// Uses the installed khsgd::sorters as a program outside khsgd would: the registry, CD-GraB on
// gradients whose orders were worked out by hand (tests/test_sorters.cpp's cases), its state saved
// and loaded, SO's draws through the program's own DeviceOps, and the errors a caller can get.
// Prints one line per check; tests/consumer_test.sh compares them with expected.txt.
#include <khsgd/khsgd_sorters.hpp>
#include <khsgd/sorting/pair_setup.hpp>  // compiles the installed pair walk headers too

#include <cstdint>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace {

// Deterministic draws: randperm(m) is m-1 .. 0; uniform and the log table are not asked for here.
class CountdownOps final : public khsgd::DeviceOps {
 public:
  std::vector<int64_t> randperm(int64_t m) override {
    std::vector<int64_t> p;
    for (int64_t i = m - 1; i >= 0; --i) p.push_back(i);
    return p;
  }
  std::vector<float> uniform(int64_t count, double from, double) override {
    return std::vector<float>(static_cast<size_t>(count), static_cast<float>(from));
  }
  std::vector<float> log_of_multiples(double, int64_t count) override {
    return std::vector<float>(static_cast<size_t>(count), 0.0f);
  }
};

std::string text(const std::vector<int64_t>& order) {
  std::string s;
  for (int64_t i : order) s += (s.empty() ? "" : " ") + std::to_string(i);
  return s;
}

// One step's G for one rank and microbatch 2: gradients 0 and `delta`, so the pair difference is
// exactly delta.
std::vector<float> pair_with_difference(std::vector<float> delta) {
  std::vector<float> G(delta.size(), 0.0f);
  G.insert(G.end(), delta.begin(), delta.end());
  return G;
}

khsgd::SorterShape one_rank(int64_t m, int64_t microbatch, int64_t D) {
  khsgd::SorterShape shape;
  shape.shard_rows = m;
  shape.microbatch = microbatch;
  shape.D = D;
  return shape;
}

void cd_grab(CountdownOps& ops) {
  auto sorter = khsgd::make_sorter("CD-GraB", one_rank(4, 2, 2), ops);
  std::cout << "CD-GraB needs all ranks: "
            << (sorter->needs() == khsgd::GradientNeed::AllRanks ? "yes" : "no") << "\n";
  std::cout << "CD-GraB epoch 1: " << text(sorter->sort()) << "\n";  // natural order
  // Step 0: s = 0, <s, d> = 0: "+", 0 to the front, 1 to the back; s = (1, 0).
  sorter->step(pair_with_difference({1, 0}).data(), 0);
  // Step 1: <s, (2, 1)> = 2 > 0: "-", 3 to the front, 2 to the back.
  sorter->step(pair_with_difference({2, 1}).data(), 1);
  khsgd::StateWriter state;
  sorter->save_state(state);
  std::cout << "CD-GraB epoch 2: " << text(sorter->sort()) << "\n";  // 0 3 2 1
  // A fresh sorter given the saved state starts epoch 2 where the first one did.
  auto resumed = khsgd::make_sorter("CD-GraB", one_rank(4, 2, 2), ops);
  khsgd::StateReader in(state.data(), "saved state");
  resumed->load_state(in);
  std::cout << "CD-GraB epoch 2 resumed: " << text(resumed->sort()) << "\n";
}

void shuffle_once(CountdownOps& ops) {
  // SO draws one randperm(m) at construction and keeps it: CountdownOps's 4 3 2 1 0, twice.
  auto sorter = khsgd::make_sorter("SO", one_rank(5, 1, 1), ops);
  std::cout << "SO epochs 1, 2: " << text(sorter->sort()) << " / " << text(sorter->sort()) << "\n";
}

// Whether building a sorter throws UserError, as a caller sees it.
template <typename Build>
void outcome(const char* what, Build build) {
  try {
    build();
    std::cout << what << ": accepted\n";
  } catch (const khsgd::UserError&) { std::cout << what << ": UserError\n"; }
}

void errors(CountdownOps& ops) {
  outcome("odd microbatch", [&] { khsgd::make_sorter("CD-GraB", one_rank(4, 3, 2), ops); });
  outcome("unknown name", [&] { khsgd::make_sorter("no-such-sorter", one_rank(4, 2, 2), ops); });
#ifndef KHSGD_WITH_CUDA
  khsgd::SorterShape on_gpu = one_rank(4, 2, 2);
  on_gpu.device = khsgd::Device::Cuda;
  outcome("Device::Cuda without CUDA", [&] { khsgd::make_sorter("KH-SGD", on_gpu, ops); });
#else
  std::cout << "Device::Cuda: this build has the CUDA twins\n";  // consumer_test.sh expects it
#endif
}

}  // namespace

int main() {
  std::string names;
  for (const std::string& name : khsgd::sorter_names()) names += name + " ";
  std::cout << "sorters: " << names << "\n";
  CountdownOps ops;
  cd_grab(ops);
  shuffle_once(ops);
  errors(ops);
  return 0;
}
