# The sanitizers' settings for a KHSGD_SANITIZE=ON build: `. tests/sanitizers/options.sh` before
# ctest (scripts/test.sh does). Every process the tests start (khsgd_train, its ranks) inherits them.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Any finding fails: ASan and UBSan stop the process with status 1 (halt_on_error), a leak at exit
# too. An allocation above 8 GiB returns null (operator new: bad_alloc) instead of aborting, which
# is what the loader fuzz test checks for (outside ASan it caps RLIMIT_AS instead).
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:max_allocation_size_mb=8192:allocator_may_return_null=1:detect_stack_use_after_return=0:strict_string_checks=1:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$here/ubsan.supp"
