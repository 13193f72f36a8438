// The khsgd sorters as a library: find_package(khsgd), link khsgd::sorters, include this header.
//
// A sorter chooses the order of each rank's m examples for the next epoch (ALGORITHM.md §4) from
// the per-example gradients of this one. Plain C++17; the random draws it needs (D-RR's
// permutations, SBW's thresholds, KH-SGD's uniforms and log table) come through a DeviceOps the
// caller provides (device_ops.hpp): khsgd::torch_draws's make_torch_ops() (torch_ops.hpp) gives
// LibTorch's own, which reproduce the reference bit for bit after seed_generators(seed).
//
//   make_sorter(name, shape, ops)  any name of sorter_names() (D-RR, CD-GraB, SBW, KH-SGD, GraB,
//                                  I-B, SO, fixed); UserError (errors.hpp) for an unknown name or
//                                  a shape it cannot take (shape_problem()); `ops` must outlive it
//   sorter->needs()                what each step must feed it: None (nothing), OwnRank (this
//                                  rank's per-example gradients) or AllRanks (every rank's)
//   sorter->sort()                 starts an epoch: this rank's order of 0 .. m-1
//   sorter->step(G, k)             step k's gradients, float32 row-major [ranks here, B, D] on
//                                  shape.device; balance(G, first, steps) takes several steps
//   save_state(StateWriter&)       between epochs (after balancing, before the next sort());
//   load_state(StateReader&)       into a sorter built with the same shape and the same draws
//
// Example: CD-GraB over one rank's m = 4 examples, 2 per step, gradients of length D = 2.
//
//   #include <khsgd/khsgd_sorters.hpp>
//   struct NoDraws : khsgd::DeviceOps {  // CD-GraB draws nothing; D-RR, SBW, KH-SGD do
//     std::vector<int64_t> randperm(int64_t) override { throw std::logic_error("randperm"); }
//     std::vector<float> uniform(int64_t, double, double) override { return {}; }
//     std::vector<float> log_of_multiples(double, int64_t) override { return {}; }
//   };
//   NoDraws ops;
//   khsgd::SorterShape shape;
//   shape.shard_rows = 4, shape.microbatch = 2, shape.D = 2;
//   auto sorter = khsgd::make_sorter("CD-GraB", shape, ops);
//   std::vector<int64_t> order = sorter->sort();   // epoch 1: {0, 1, 2, 3}
//   for (int64_t k = 0; k < 2; ++k) {
//     // ... train on examples order[2k], order[2k+1]; G = their gradients, [1, 2, 2] ...
//     sorter->step(G.data(), k);
//   }
//   khsgd::StateWriter state;
//   sorter->save_state(state);                     // state.data(): bytes to keep
//   order = sorter->sort();                        // epoch 2, from epoch 1's gradients
//
// Several ranks: every rank builds the sorter with its own shape.rank and, for AllRanks, feeds
// the gathered gradients of all ranks in rank order; every rank then holds the same state.
// The pair sorters' building blocks (pair_setup.hpp, pair_walk.hpp) are installed too.
#pragma once

#include "khsgd/base/errors.hpp"
#include "khsgd/sorting/device_ops.hpp"
#include "khsgd/sorting/sorter_registry.hpp"
#include "khsgd/sorting/sorters.hpp"
#include "khsgd/sorting/state_io.hpp"
