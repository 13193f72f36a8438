// Sorters: who decides the order of each rank's examples in the next epoch (ALGORITHM.md §4).
//
// One interface, chosen by name: D-RR reshuffles at random; CD-GraB, SBW and KH-SGD balance pairs
// of per-example gradients (the trainer then gathers them from all ranks every step and hands
// them to step()). All ranks hold identical sorter state and each returns its own row of the
// n x m order matrix.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "khsgd/state_io.hpp"
#include "khsgd/torch_ops.hpp"

namespace khsgd {

struct SorterShape {
  int64_t ranks = 1;            // n
  int64_t shard_rows = 0;       // m, examples per rank
  int64_t microbatch = 16;      // examples per rank and step
  int64_t D = 21;               // gradient length
  int64_t epochs = 1;           // E, for SBW's and KH-SGD's tables
  int64_t rank = 0;             // whose row sort() returns
  Device device = Device::Cpu;  // where the pair sorters keep their state (D-RR: whose generator)
};

class Sorter {
 public:
  virtual ~Sorter() = default;
  // True for CD-GraB, SBW and KH-SGD: they need every step's gathered per-example gradients.
  virtual bool balances_pairs() const = 0;
  // Starts an epoch: this rank's order of its m local examples (indices 0 .. m-1).
  virtual const std::vector<int64_t>& sort() = 0;
  // After sort(): rank r's order of its m examples, m entries valid until the next sort(). Every
  // rank holds the same state, so any rank can tell every rank's order: a process that runs all
  // ranks' shards (--in_process) uses one sorter for all. Host-memory sorters only.
  virtual const int64_t* order_of(int64_t rank) const;
  // Step k's gradients from all ranks, G [n, microbatch, D] row-major, in the memory of the
  // sorter's device (SorterShape::device: host memory or the GPU's). Called in step order.
  virtual void step(const float* G, int64_t k) = 0;
  // All steps of an epoch at once, G_all [num_batches, n, microbatch, D]: the same decisions as
  // step() for k = 0, 1, ... The decisions only shape the next epoch's order, so an engine may
  // run the whole pass after the epoch's SGD steps.
  virtual void balance_epoch(const float* G_all, int64_t num_batches) = 0;
  // Checkpoints, between epochs: what the next sort() and the epochs after it depend on beyond
  // the generators (the next epoch's order matrix, counters, KH-SGD's log-penalties).
  virtual void save_state(StateWriter& out) const = 0;
  // Into a sorter freshly built with the same shape and seed. Throws UserError if `in` does not
  // fit.
  virtual void load_state(StateReader& in) = 0;
};

// name: CD-GraB, D-RR, KH-SGD or SBW. Draws what the sorter needs at construction from `ops`
// (ALGORITHM.md §5: KH-SGD uniform_(-1, 1) of T, SBW rand(m n E / 2)); keeps `ops` for later
// epochs. With shape.device == Device::Cuda the pair sorters keep their state on the GPU (CUDA
// builds).
std::unique_ptr<Sorter> make_sorter(const std::string& name, const SorterShape& shape,
                                    DeviceOps& ops);

#ifdef KHSGD_WITH_CUDA
// The pair-balancing family on the GPU (src/cuda/cuda_sorters.cu): name CD-GraB, KH-SGD or SBW.
std::unique_ptr<Sorter> make_cuda_pair_sorter(const std::string& name, const SorterShape& shape,
                                              DeviceOps& ops);
#endif

}  // namespace khsgd
