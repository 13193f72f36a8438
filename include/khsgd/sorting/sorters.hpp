// Sorters: who decides the order of each rank's examples in the next epoch (ALGORITHM.md §4).
//
// One interface; each sorter is one entry of the registry (sorter_registry.hpp), which builds it
// by name. A sorter tells the engines what it needs of every step (needs()): nothing (D-RR, SO,
// fixed), the per-example gradients of its own rank (I-B), or those of all ranks gathered
// (CD-GraB, SBW, KH-SGD, GraB). Sorters fed all ranks' gradients hold the same state on every rank
// and each returns its own row of the n x m order matrix.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "khsgd/base/device.hpp"
#include "khsgd/base/geometry.hpp"
#include "khsgd/sorting/device_ops.hpp"
#include "khsgd/sorting/state_io.hpp"

namespace khsgd {

namespace cuda {
struct PairBalanceArgs;
}

// What a sorter needs of every step, which decides what the engine computes and communicates.
enum class GradientNeed {
  None,      // the mean gradient only, all-reduced: balance() is never called
  OwnRank,   // its ranks' own per-example gradients; the mean gradient all-reduced as for None
  AllRanks,  // every rank's per-example gradients, gathered; the update takes their mean
};

// The geometry (ranks, shard_rows, microbatch, D: n, m, examples per rank and step, gradient
// length) and what a sorter needs besides.
struct SorterShape : Geometry {
  int64_t epochs = 1;           // E, for SBW's and KH-SGD's tables
  int64_t rank = 0;             // whose row sort() returns
  Device device = Device::Cpu;  // where the pair sorters keep their state (D-RR: whose generator)
  // --in_process: this one sorter serves every rank's shard, so GradientNeed::OwnRank sorters are
  // handed all n ranks' gradients (else only rank `rank`'s).
  bool every_rank_here = false;
};

// The shape of n = `ranks` ranks of m = `shard_rows` examples each, `microbatch` a step, D numbers
// a gradient and E = `epochs` epochs, whose sort() answers for `rank` (on the CPU, one rank here):
// for building a sorter by hand (the Python module, the tests).
inline SorterShape sorter_shape(int64_t ranks, int64_t shard_rows, int64_t microbatch, int64_t D,
                                int64_t epochs, int64_t rank) {
  SorterShape shape;
  shape.ranks = ranks;
  shape.shard_rows = shard_rows;
  shape.microbatch = microbatch;
  shape.D = D;
  shape.epochs = epochs;
  shape.rank = rank;
  return shape;
}

class Sorter {
 public:
  virtual ~Sorter() = default;
  virtual GradientNeed needs() const = 0;
  // Starts an epoch: this rank's order of its m local examples (indices 0 .. m-1).
  virtual const std::vector<int64_t>& sort() = 0;
  // After sort(): rank r's order of its m examples, m entries valid until the next sort(). A
  // process that runs all ranks' shards (--in_process) uses one sorter for all and asks it for
  // every rank's order.
  virtual const int64_t* order_of(int64_t rank) const = 0;
  // The gradients of `steps` steps from step `first_step` on, in step order, in the memory of the
  // sorter's device (SorterShape::device: host memory or the GPU's), row-major
  // [steps, ranks here, microbatch, D]: "ranks here" is n for GradientNeed::AllRanks, and for
  // OwnRank n with SorterShape::every_rank_here, else 1. The decisions only shape the next
  // epoch's order, so an engine may hand over a step at a time or the whole epoch after its SGD
  // steps: the same decisions either way. It may also call balance() from another thread while
  // its steps go on (sorter_pipeline.hpp), between sort() and the epoch's end: balance() must then
  // write only the next epoch's order and its own state, never the order sort() returned or
  // order_of() points to (which the steps read meanwhile), nor draw from DeviceOps.
  virtual void balance(const float* G, int64_t first_step, int64_t steps) = 0;
  // Step k's gradients alone.
  void step(const float* G, int64_t k) { balance(G, k, 1); }
  // Lets sort() return before its order is whole, the rest drawn on a thread of its own while the
  // steps read what is drawn (D-RR: a permutation's items become final in order). Asked for by a
  // caller that then calls wait_for_order() before every read of the orders; by default sort()
  // returns whole orders.
  virtual void draw_beside(bool /*allowed*/) {}
  // After sort(): returns once the first `items` of every rank's order are final (m or more: the
  // draw is done and its generator left as sort() alone leaves it; a failure of the draw is
  // rethrown then). With whole orders it returns at once.
  virtual void wait_for_order(int64_t /*items*/) {}
  // Checkpoints, between epochs: what the next sort() and the epochs after it depend on beyond
  // the generators (the next epoch's order matrix, counters, KH-SGD's log-penalties).
  virtual void save_state(StateWriter& out) const = 0;
  // Into a sorter freshly built with the same shape and seed. Throws UserError if `in` does not
  // fit.
  virtual void load_state(StateReader& in) = 0;
  // The GPU engine's fused epoch kernel can make a sorter's decisions beside the steps, as each
  // step's gradients come out: a sorter that supports it (a CUDA pair sorter whose pass fits)
  // fills `pass` with its walk over an epoch of `steps` steps whose gradients the kernel writes
  // to `gradients`, and returns true. Every other sorter returns false, and the engine calls
  // balance() after the steps.
  // Defined here, so that Sorter has no key function: its vtable and type info go with every
  // subclass, and the CUDA twins (khsgd_cuda) need nothing from the sorters library.
  virtual bool pass_beside_steps(const float* /*gradients*/, int64_t /*steps*/,
                                 cuda::PairBalanceArgs* /*pass*/) {
    return false;
  }
};

}  // namespace khsgd
