// khsgd_train: the command-line entry point. Everything here is about exits: one line per error,
// status 2 for bad input, 1 for a failed write (or anything unexpected), 3 for a lost peer,
// 128 + the signal for a clean stop by SIGTERM (143), SIGINT (130) or SIGHUP (129), 127 when
// khsgd_train_run cannot be started.
//
// Built twice. khsgd_train (KHSGD_FRONT) links no LibTorch: it answers --help, --list-sorters,
// --print_run_dir, --print_run_state and the refusals of the command line and of the launch's
// environment in milliseconds, and runs itself what needs no LibTorch (trainer.hpp's
// run_needs_libtorch: one rank or --in_process workers on the CPU, every sorter but KH-SGD). For
// the rest -- the GPU, gloo and nccl, mpi with several ranks, KH-SGD, and --version -- it replaces
// itself (execv, same process, same arguments) by khsgd_train_run beside it, which links LibTorch:
// loading it and the ~280 libraries it needs takes ~0.5 s, most of a short run's time (issue 22).
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include "khsgd/app/config.hpp"
#include "khsgd/app/launch.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/base/sanitizers.hpp"
#include "khsgd/run/results.hpp"
#include "khsgd/run/stop_signal.hpp"
#include "khsgd/run/trainer.hpp"
#include "khsgd/sorting/sorter_registry.hpp"

// After an error, leave without the exit-time destructors. By the time an error reaches main the
// stack has unwound and the run's own objects are gone; what _Exit skips is the teardown of
// static state in LibTorch, Gloo and CUDA, which can wait on a peer that is gone. Nothing is left
// to write: every result was flushed as it was written.
static int leave(int status) {
  std::fflush(nullptr);
  std::_Exit(status);
}

// After a finished run the same: run_training() has returned, so every file it wrote is flushed and
// closed, its threads are joined and the communicator is closed (MPI_Finalize included); what is
// left is LibTorch's static teardown (in khsgd_train_run), about 0.17 s of deregistering operators.
// Under the sanitizers the ordinary exit stays, so that LeakSanitizer still looks at the heap.
static int leave_after_run() {
#if defined(KHSGD_ADDRESS_SANITIZER)
  return 0;
#else
  return leave(0);
#endif
}

#ifdef KHSGD_FRONT
// Becomes khsgd_train_run, found beside this binary (through /proc/self/exe, else argv[0]), with
// the same arguments. Returns only when that failed, with the line that says why.
static std::string start_run(char** argv) {
  std::string self(4096, '\0');
  const ssize_t length = readlink("/proc/self/exe", self.data(), self.size() - 1);
  if (length > 0)
    self.resize(static_cast<size_t>(length));
  else
    self = argv[0];
  const std::string run = self.substr(0, self.rfind('/') + 1) + "khsgd_train_run";
  execv(run.c_str(), argv);
  return "cannot start " + run + " (" + std::strerror(errno) +
         "): khsgd_train hands the runs that need LibTorch to khsgd_train_run beside it; build or "
         "install both "
         "(cmake --install does), or run khsgd_train_run itself";
}
#endif

int main(int argc, char** argv) {
  khsgd::ignore_broken_pipes();
  spdlog::set_pattern("%v");
  int rank = 0;
  // "khsgd_train [rank R]: KIND: message" (no kind: a plain notice).
  auto report = [&rank](const char* kind, const std::string& message) {
    std::fputs(khsgd::error_line(rank, kind, message).c_str(), stderr);
  };
  try {
    khsgd::Config config;
    std::string help;
    if (!khsgd::parse_command_line(argc, argv, &config, &help)) {
      std::fputs(help.c_str(), stdout);
      return 0;
    }
#ifndef KHSGD_FRONT
    if (config.version) {
      std::printf("%s\n", khsgd::build_info().c_str());
      return 0;
    }
#else
    if (config.version) {  // the build's LibTorch and backends: khsgd_train_run knows them
      report("error", start_run(argv));
      return leave(127);
    }
#endif
    if (config.list_sorters) {
      std::fputs(khsgd::sorter_list(config.device == "cuda").c_str(), stdout);
      return 0;
    }
    const khsgd::Launch launch = khsgd::detect_launch();
    if (config.print_run_dir || config.print_run_state) {
      // The folder the run would write to; --node_cnt, when given, names it without a launch.
      if (config.node_cnt == 0) config.node_cnt = launch.world_size;
      const std::string dir = khsgd::run_directory(config);
      std::printf("%s\n",
                  config.print_run_dir ? dir.c_str() : khsgd::run_state(dir, config).c_str());
      return 0;
    }
#ifdef KHSGD_FRONT
    if (khsgd::run_needs_libtorch(config, launch)) {
      report("error", start_run(argv));
      return leave(127);
    }
#endif
    rank = launch.rank;
    khsgd::run_training(config, launch);
    return leave_after_run();
  } catch (const khsgd::UserError& e) {
    report("error", e.what());
    return leave(2);
  } catch (const khsgd::IoError& e) {
    report("I/O error", e.what());
    return leave(1);
  } catch (const khsgd::CommError& e) {
    report("communication error", e.what());
    return leave(3);
  } catch (const khsgd::StopRequested& e) {
    report("", e.what());
    return leave(128 + e.signal());
  } catch (const std::exception& e) {
    report("internal error", e.what());
    return leave(1);
  }
}
