// Error types that decide how khsgd_train exits.
//
// Everything a user can get wrong (flags, data files, the launch environment, the results folder)
// throws UserError: main() prints its message as one line and exits with status 2 before any
// result is written. A collective that fails mid-run (a rank died or hung) throws CommError, exit 3.
#pragma once

#include <stdexcept>
#include <string>

namespace khsgd {

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CommError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The one line khsgd_train prints for an error, "khsgd_train [rank 1]: KIND: MESSAGE\n" (rank 0
// is not named). Also written by watchdogs that end a process from their own thread.
inline std::string error_line(int rank, const std::string& kind, const std::string& message) {
  return "khsgd_train" + (rank ? " [rank " + std::to_string(rank) + "]" : std::string()) + ": " +
         kind + ": " + message + "\n";
}

}  // namespace khsgd
