// Training engines: one device's implementation of an epoch's step loop (ALGORITHM.md §3) and of
// the evaluation. The trainer drives an engine without knowing which device it runs on.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "khsgd/comm/comm.hpp"
#include "khsgd/data/data.hpp"
#include "khsgd/engine/epoch_report.hpp"
#include "khsgd/model/model.hpp"
#include "khsgd/sorting/sorters.hpp"

namespace khsgd {

struct EngineSetup {
  const Dataset* data = nullptr;  // the whole data set; the engine reads this rank's shard of it
  Partition partition;
  int rank = 0;
  // Every worker of the partition runs here, in one process (--in_process; rank is then 0):
  // the same shards, steps and sums in rank order as partition.ranks processes would run.
  bool in_process = false;
  // Cores this rank may keep busy (rank_threads(), launch.hpp): with more than one, the sorter's
  // walk runs beside the steps (sorter_pipeline.hpp) and the evaluation is split among them.
  int threads = 1;
  std::vector<float> theta;  // initial [w; b]
  double lr = 1e-2;
  double momentum = 0.9;
};

// What the trainer wants from an epoch besides the training itself.
struct EpochHooks {
  StepObserver* observer = nullptr;
  bool profile = false;
  // When set: the gathered per-example gradients of every step, [num_batches * n * microbatch, D]
  // in step order (host memory, N' rows), for --save_grads.
  float* capture = nullptr;
};

class TrainingEngine {
 public:
  virtual ~TrainingEngine() = default;
  // The epoch's num_batches steps: step k trains on order[k mb .. (k+1) mb) of this rank's shard.
  // What the sorter needs() decides what is computed and communicated: every step's gathered
  // per-example gradients (AllRanks), or the mean gradient averaged by an all-reduce and, for
  // OwnRank, this rank's per-example gradients handed to the sorter.
  virtual EpochTimes train_epoch(const std::vector<int64_t>& order, Sorter& sorter,
                                 Communicator& comm, const EpochHooks& hooks) = 0;
  // (full-train over the N' used rows, test over all rows).
  virtual std::pair<Evaluation, Evaluation> evaluate() = 0;
  virtual std::vector<float> parameters() const = 0;
  virtual std::vector<float> velocity() const = 0;
  // Resuming from a checkpoint: parameters and momentum as they were.
  virtual void restore(const std::vector<float>& theta, const std::vector<float>& velocity) = 0;
};

std::unique_ptr<TrainingEngine> make_cpu_engine(const EngineSetup& setup);

#ifdef KHSGD_WITH_CUDA
// The GPU engine (src/cuda/cuda_engine.cu) on device `cuda_index`.
std::unique_ptr<TrainingEngine> make_cuda_engine(const EngineSetup& setup, int cuda_index);
// Makes `cuda_index` the current device, so that every later allocation lands there.
void select_cuda_device(int cuda_index);
// How many GPUs the CUDA runtime sees (0 when it has no driver or no device), asked without
// LibTorch: whether khsgd_train hands --device auto to khsgd_train_run.
int visible_cuda_devices();
// The most device memory khsgd's own buffers held at once (MiB).
double peak_cuda_mib();
#endif

}  // namespace khsgd
