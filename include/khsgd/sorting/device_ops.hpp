// DeviceOps: where the sorters get their random numbers (ALGORITHM.md §5).
//
// The sorters are plain C++; the few numbers that must be the reference's own bits (randperm,
// uniform_, KH-SGD's float32 log table) come through this interface, which the caller provides:
// torch_ops.hpp's make_torch_ops() (the khsgd_torch_draws library, LibTorch's own generators), or
// anything else that follows the same contracts (tests script them).
#pragma once

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
  // The same permutation into `out` (m items), which may reuse out's storage: D-RR draws one
  // every epoch into the same vector.
  virtual void randperm_into(int64_t m, std::vector<int64_t>& out) { out = randperm(m); }
  // torch.empty(count, device=...).uniform_(from, to); torch.rand(count) is uniform(count, 0, 1)
  virtual std::vector<float> uniform(int64_t count, double from, double to) = 0;
  // torch.log(constant * torch.arange(1, count + 1, dtype=float32, device=...))
  virtual std::vector<float> log_of_multiples(double constant, int64_t count) = 0;
};

}  // namespace khsgd
