// libFuzzer target: the zip container reader alone (zip_archive.cpp) on arbitrary bytes: the
// directory, then every record. What it checks is in fuzz_inputs.hpp, shared with the ctest that
// replays the seeds and regression inputs. tests/fuzz/build.sh builds it, tests/fuzz/run.sh runs
// it.
#include "fuzz_inputs.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  khsgd_fuzz::zip_archive_input(data, size);
  return 0;
}
