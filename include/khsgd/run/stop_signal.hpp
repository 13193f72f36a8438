// A clean stop on SIGTERM (what SLURM and Kubernetes send before SIGKILL), SIGINT (Ctrl-C) and
// SIGHUP (the terminal or ssh connection gone): the handler only records the signal; the ranks
// agree at the end of each epoch to stop there (agreement.hpp), write a checkpoint and exit with
// 128 + the signal (143, 130, 129).
//
// A second SIGINT exits at once (status 130; the last checkpoint stays). A second SIGTERM or
// SIGHUP is ignored: launchers that pass a Ctrl-C on as SIGTERM (torchrun) would otherwise cut the
// stop short. A process started with SIGINT ignored (a `cmd &` in a script) or SIGHUP ignored
// (nohup) keeps ignoring it, as Python and most tools do.
#pragma once

#include <pthread.h>

#include <csignal>
#include <string>

namespace khsgd {

// From here on SIGTERM, SIGINT and SIGHUP are recorded instead of ending the process.
void install_stop_handlers();

// For the whole process, from main()'s start: a closed reader of stdout or stderr (`| head`) or a
// closed descriptor (`>&-`) never ends a run; what cannot be shown is dropped.
void ignore_broken_pipes();

// The first SIGTERM, SIGINT or SIGHUP received since install_stop_handlers(), 0 when none.
int stop_signal();

// "SIGTERM", "SIGINT", "SIGHUP", else "signal N".
std::string signal_name(int signal);

// Called first by each of khsgd's own helper threads (heartbeat, watchdog): the stop signals go
// to a thread that does not block them, so blocking them here keeps the handler off threads that
// sit in poll() or a timed socket read, which a handler interrupts with EINTR even under
// SA_RESTART. (The threads LibTorch, Gloo and Open MPI start are not ours to set.)
inline void block_stop_signals_in_this_thread() {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
}

}  // namespace khsgd
