// libFuzzer target: the checkpoint reader (checkpoint.cpp, state_io.cpp) and the pair sorters'
// state inside a checkpoint (pair_setup.cpp) on arbitrary bytes. What it checks is in
// fuzz_inputs.hpp, shared with the ctest that replays the seeds and regression inputs.
// tests/fuzz/build.sh builds it, tests/fuzz/run.sh runs it.
#include "fuzz_inputs.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  khsgd_fuzz::checkpoint_input(data, size);
  return 0;
}
