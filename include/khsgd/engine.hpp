// Training engines: one device's implementation of an epoch's step loop (SPEC §3) and of the
// evaluation. The trainer drives an engine without knowing which device it runs on.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "khsgd/comm.hpp"
#include "khsgd/data.hpp"
#include "khsgd/model.hpp"
#include "khsgd/sorters.hpp"

namespace khsgd {

struct EngineSetup {
  const Dataset* data = nullptr;  // the whole data set; the engine reads this rank's shard of it
  Partition partition;
  int rank = 0;
  std::vector<float> theta;  // initial [w; b]
  double lr = 1e-2;
  double momentum = 0.9;
};

class TrainingEngine {
 public:
  virtual ~TrainingEngine() = default;
  virtual Device device() const = 0;
  // The epoch's num_batches steps: step k trains on order[k mb .. (k+1) mb) of this rank's shard.
  // Pair sorters get every step's gathered per-example gradients; D-RR's gradients are averaged
  // by an all-reduce.
  virtual void train_epoch(const std::vector<int64_t>& order, Sorter& sorter,
                           Communicator& comm) = 0;
  // (full-train over the N' used rows, test over all rows).
  virtual std::pair<Evaluation, Evaluation> evaluate() = 0;
  virtual std::vector<float> parameters() const = 0;
};

std::unique_ptr<TrainingEngine> make_cpu_engine(const EngineSetup& setup);

#ifdef KHSGD_WITH_CUDA
// The GPU engine (src/cuda/cuda_engine.cu) on device `cuda_index`.
std::unique_ptr<TrainingEngine> make_cuda_engine(const EngineSetup& setup, int cuda_index);
// Makes `cuda_index` the current device, so that every later allocation lands there.
void select_cuda_device(int cuda_index);
#endif

}  // namespace khsgd
