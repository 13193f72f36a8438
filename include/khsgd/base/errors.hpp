// Error types that decide how khsgd_train exits.
//
// Everything a user can get wrong (flags, data files, the launch environment, the results folder
// at the start) throws UserError: main() prints its message as one line and exits with status 2
// before any result is written. A write that fails mid-run (disk full, a folder removed) throws
// IoError, status 1: the input was fine, the machine was not. A collective that fails mid-run (a
// rank died or hung) throws CommError, status 3, and so do ranks that cannot join (a MASTER_PORT
// another program holds, a rank that never comes). A run stopped by SIGTERM, SIGINT or SIGHUP ends
// with StopRequested, status 128 + the signal's number.
#pragma once

#include <stdexcept>
#include <string>

namespace khsgd {

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CommError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Not a failure: the run stopped cleanly at the end of an epoch, its checkpoint written.
class StopRequested : public std::runtime_error {
 public:
  StopRequested(int signal, const std::string& message)
      : std::runtime_error(message), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

// The one line khsgd_train prints for an error, "khsgd_train [rank 1]: KIND: MESSAGE\n" (rank 0
// is not named; an empty KIND gives a plain notice). Also written by watchdogs that end a process
// from their own thread.
inline std::string error_line(int rank, const std::string& kind, const std::string& message) {
  return "khsgd_train" + (rank ? " [rank " + std::to_string(rank) + "]" : std::string()) + ": " +
         kind + (kind.empty() ? "" : ": ") + message + "\n";
}

}  // namespace khsgd
