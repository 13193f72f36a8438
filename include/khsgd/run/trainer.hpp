// A whole run, from checked flags to results on disk: join the other ranks, load the data, agree
// that every rank is ready, seed, build model, sorter and engine, then train and evaluate epoch
// by epoch, writing each epoch's metrics as soon as it is known.
#pragma once

#include "khsgd/app/config.hpp"
#include "khsgd/app/launch.hpp"

namespace khsgd {

// Throws UserError for bad input (before anything is written) and CommError when a peer is lost.
void run_training(Config config, const Launch& launch);

// Whether the run these flags ask for needs LibTorch: the GPU, c10d (gloo, nccl, and the
// heartbeat store of mpi with several ranks) or KH-SGD's log table (SorterInfo::torch_log_table).
// khsgd_train runs the others itself and hands these to khsgd_train_run (src/app/main.cpp).
bool run_needs_libtorch(const Config& config, const Launch& launch);

// One line: khsgd's version, LibTorch's, whether the CUDA engine is built, the c10d backends.
std::string build_info();

}  // namespace khsgd
