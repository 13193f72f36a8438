#include "khsgd/run/stop_signal.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace khsgd {

namespace {

// Touched from a signal handler: must be lock-free to be async-signal-safe.
std::atomic<int> received{0};
static_assert(std::atomic<int>::is_always_lock_free, "the stop flag must be lock-free");

extern "C" void on_stop_signal(int signal) {
  int none = 0;
  if (received.compare_exchange_strong(none, signal)) return;
  if (signal != SIGINT) return;
  static const char kMessage[] =
      "khsgd_train: second SIGINT: exiting at once (the last checkpoint stays)\n";
  ssize_t ignored = ::write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
  (void)ignored;
  ::_exit(128 + SIGINT);
}

void catch_signal(int signal) {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: a blocking read, write or wait in progress goes on and the epoch ends as usual
  // (poll() and timed socket reads return EINTR all the same: khsgd's own helper threads block
  // these signals, see block_stop_signals_in_this_thread()).
  action.sa_flags = SA_RESTART;
  ::sigaction(signal, &action, nullptr);
}

bool ignored_at_start(int signal) {
  struct sigaction current {};
  return ::sigaction(signal, nullptr, &current) == 0 && current.sa_handler == SIG_IGN;
}

}  // namespace

void install_stop_handlers() {
  catch_signal(SIGTERM);
  // A signal ignored at the start stays ignored: SIGINT under `cmd &`, SIGHUP under nohup.
  if (!ignored_at_start(SIGINT)) catch_signal(SIGINT);
  if (!ignored_at_start(SIGHUP)) catch_signal(SIGHUP);
}

void ignore_broken_pipes() {
  // Without this, a write to a pipe whose reader has gone (`khsgd_train | head`) kills the process
  // with SIGPIPE; ignored, the write fails with EPIPE, which the output code drops.
  ::signal(SIGPIPE, SIG_IGN);
  // A closed stdout or stderr (`>&-`) would hand its number to the next file opened, and the log
  // would then be written into metrics.csv or a checkpoint: /dev/null takes the place.
  for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; ++fd) {
    if (::fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int null = ::open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY);
    if (null >= 0 && null != fd) {
      ::dup2(null, fd);
      ::close(null);
    }
  }
}

int stop_signal() { return received.load(); }

std::string signal_name(int signal) {
  if (signal == SIGTERM) return "SIGTERM";
  if (signal == SIGINT) return "SIGINT";
  if (signal == SIGHUP) return "SIGHUP";
  return "signal " + std::to_string(signal);
}

}  // namespace khsgd
