// libFuzzer target: the torch.save reader (pt_reader.cpp, through zip_archive.cpp) on arbitrary
// bytes. What it checks is in fuzz_inputs.hpp, shared with the ctest that
// replays the seeds and regression inputs. tests/fuzz/build.sh builds it, tests/fuzz/run.sh runs
// it.
#include "fuzz_inputs.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  khsgd_fuzz::pt_reader_input(data, size);
  return 0;
}
