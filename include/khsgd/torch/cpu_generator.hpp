// torch's default CPU generator and the CPU draws khsgd takes from it, without LibTorch.
//
// A run needs LibTorch's CPU draws bit for bit (ALGORITHM.md §5): the Linear init, D-RR's
// randperm, SBW's and KH-SGD's uniform_ tables, and the generator's state in every checkpoint.
// Loading LibTorch for them costs a run ~0.5 s before its first epoch (issue 22), so they are
// written out here from LibTorch's algorithms: its MT19937 (seeded as at::mt19937 is, read 32 bits
// at a time), uniform_'s float32 mapping, randperm's swap loop, nn::Linear's kaiming-uniform init
// and the 5056 bytes of torch.get_rng_state(). TorchDraws.* in tests/test_autograd.cpp compares
// every one with LibTorch itself (values and the generator's state after them) in both CI builds.
//
// Only the CPU generator: CUDA draws (Philox) stay LibTorch's (torch_ops.hpp). KH-SGD's float32
// log table, whose bits are torch.log's (Sleef in Debian's LibTorch, MKL in PyPI's, which disagree
// with each other on ~1 in 5 000 entries), is not a draw: CpuOps asks a function for it
// (LibTorch's, or libtorch_log.hpp's where that gives the same bits).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "khsgd/sorting/device_ops.hpp"

namespace khsgd {

class CpuGenerator {
 public:
  // at::default_rng_seed_val: the seed of a process that never called torch.manual_seed.
  static constexpr uint64_t kDefaultSeed = 67280421310721ULL;
  // The size of torch.get_rng_state() (at::CPUGeneratorImpl's state record).
  static constexpr size_t kStateBytes = 5056;

  explicit CpuGenerator(uint64_t seed = kDefaultSeed) { manual_seed(seed); }

  // torch.manual_seed(seed) for the CPU generator (MT19937 takes the low 32 bits; the state keeps
  // all 64 as the initial seed).
  void manual_seed(uint64_t seed);
  // CPUGeneratorImpl::random(): the next 32 bits.
  uint32_t random() {
    if (--left_ == 0) refill();
    uint32_t y = state_[next_++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    return y;
  }

  // out[0..count) = the next count draws of random(), in order, the state after as after them:
  // the words tempered many at a time (vector lanes) instead of one call each.
  void random_block(uint32_t* out, int64_t count);

  // torch.get_rng_state() / torch.set_rng_state(): the same bytes, so that checkpoints written by
  // either binary restore in the other. set_state throws std::invalid_argument for bytes that are
  // not such a state (size, counters out of range, a cached normal sample, which khsgd never
  // draws).
  std::vector<uint8_t> state() const;
  void set_state(const std::vector<uint8_t>& bytes);

 private:
  void refill();  // the MT19937 twist over all 624 words

  static constexpr int kWords = 624;
  std::array<uint32_t, kWords> state_{};
  uint64_t seed_ = 0;
  int left_ = 1;       // draws until the next refill, plus one
  uint32_t next_ = 0;  // index of the next word to temper
};

// torch.randperm(m) on the CPU: for i = 0 .. m-2 swap r[i] and r[i + random() % (m - i)] (the
// algorithm of LibTorch 1.13, and of 2.x below 2^32 / 20 items; from there on 2.x shuffles inside
// out over 64-bit draws, and so does this where KHSGD_TORCH_MAJOR, the LibTorch built against, is 2
// or more).
std::vector<int64_t> cpu_randperm(CpuGenerator& generator, int64_t m);
// The same into r, resized to m: a vector that already holds m items is neither reallocated nor
// zeroed first (1.5 MB an epoch for D-RR on the HMDA shape, a tenth of the permutation's time).
// With `drawn`: DeviceOps::randperm_into's count of final items, after every block of swaps
// (item i is final once the swap at i is done: the later swaps are all past it).
void cpu_randperm_into(CpuGenerator& generator, int64_t m, std::vector<int64_t>& r,
                       std::atomic<int64_t>* drawn = nullptr);

// torch.empty(count).uniform_(from, to) in float32: each value from one 32-bit draw,
// x = (bits & (2^24 - 1)) * 2^-24, then x * (to - from) + from in float32 (from and to rounded to
// float32 first), rounded once where LibTorch's kernel fuses the multiply-add and twice where it
// does not (libtorch_uniform_rounds_once).
std::vector<float> cpu_uniform(CpuGenerator& generator, int64_t count, double from, double to);

// Whether LibTorch's uniform_ on this machine rounds x * (to - from) + from once: ATen runs its
// AVX2 or AVX-512 kernel, compiled with fused multiply-adds, where the CPU has AVX2 and FMA, and
// its baseline kernel (two roundings) otherwise or under ATEN_CPU_CAPABILITY=default. The draws
// and nn::Linear's init differ in about one value in five between the two.
bool libtorch_uniform_rounds_once();

// torch::nn::Linear(d, 1)'s fresh parameters [w; b]: kaiming_uniform_(weight, a = sqrt(5)), i.e.
// uniform_(-b, b) with b = sqrt(3) * sqrt(2 / (1 + 5)) / sqrt(d), then bias uniform_(-1/sqrt(d),
// 1/sqrt(d)); d + 1 draws.
std::vector<float> cpu_linear_init(CpuGenerator& generator, int64_t d);

// The process's CPU generator, as LibTorch has one default generator per process: the trainer
// seeds it, draws from it and checkpoints it.
CpuGenerator& default_cpu_generator();

// KH-SGD's float32 log table, torch.log(constant * torch.arange(1, count + 1)) (device_ops.hpp).
using LogTable = std::vector<float> (*)(double constant, int64_t count);

// DeviceOps on `generator` (not owned); log_of_multiples calls `log_table`.
std::unique_ptr<DeviceOps> make_cpu_ops(CpuGenerator& generator, LogTable log_table);

}  // namespace khsgd
