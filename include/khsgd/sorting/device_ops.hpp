// DeviceOps: where the sorters get their random numbers (ALGORITHM.md §5).
//
// The sorters are plain C++; the few numbers that must be the reference's own bits (randperm,
// uniform_, KH-SGD's float32 log table) come through this interface, which the caller provides:
// torch_ops.hpp's make_torch_ops() (the khsgd_torch_draws library, LibTorch's own generators), or
// anything else that follows the same contracts (tests script them).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace khsgd {

// What the sorters draw from the training device. A sorter keeps the DeviceOps it was built with
// and draws from it in sort() too (D-RR, KH-SGD), so it must outlive the sorter.
class DeviceOps {
 public:
  virtual ~DeviceOps() = default;
  // torch.randperm(m, device=...): a permutation of 0 .. m-1
  virtual std::vector<int64_t> randperm(int64_t m) = 0;
  // torch.empty(count, device=...).uniform_(from, to); torch.rand(count) is uniform(count, 0, 1)
  virtual std::vector<float> uniform(int64_t count, double from, double to) = 0;
  // torch.log(constant * torch.arange(1, count + 1, dtype=float32, device=...))
  virtual std::vector<float> log_of_multiples(double constant, int64_t count) = 0;
  // (Last, so that the virtuals above keep their places in the table: an added virtual goes at
  // the end.)
  // randperm(m) into `out` (m items), which may reuse out's storage: D-RR draws one
  // every epoch into the same vector. With `drawn`, how many of its first items are final so far
  // is stored there as they become so (release), for a reader on another thread: m last, once
  // the draw is done. Where out already holds m items, its storage stays where it is.
  virtual void randperm_into(int64_t m, std::vector<int64_t>& out,
                             std::atomic<int64_t>* drawn = nullptr) {
    const std::vector<int64_t> permutation = randperm(m);
    out.resize(permutation.size());  // copied, not moved in: the storage stays where it is
    std::copy(permutation.begin(), permutation.end(), out.begin());
    if (drawn != nullptr) drawn->store(m, std::memory_order_release);
  }
};

}  // namespace khsgd
