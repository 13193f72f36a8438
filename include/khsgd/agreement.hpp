// How the ranks stay in step around the phases of a run: every rank says whether its part went
// well, and all go on together or all stop together, each with one line. Without this, a rank that
// fails alone leaves the others waiting in their next collective until the timeout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "khsgd/comm.hpp"
#include "khsgd/config.hpp"
#include "khsgd/errors.hpp"

namespace khsgd {

// Every rank reports its own failure ("" when none). If any rank failed, every rank throws
// UserError: the failing rank its own message, the others "rank R could not STAGE (its error is
// printed above); stopping".
void agree(Communicator& comm, const std::string& own_failure, const char* stage);

// Runs `phase` on this rank, then agrees on how it went: a UserError on any rank stops all.
template <typename Phase>
void run_agreed(Communicator& comm, const char* stage, Phase&& phase) {
  std::string failure;
  try {
    phase();
  } catch (const UserError& e) {
    failure = e.what();
  }
  agree(comm, failure, stage);
}

// The ranks compare every behaviour flag and the data before anyone trains. A mismatch is one
// line on every rank naming the first flag that differs (or the data).
void agree_on_settings(Communicator& comm, const std::vector<FlagSetting>& flags,
                       uint64_t data_fingerprint);

// The identity of a run, which a checkpoint must share with the run that resumes it: the flags
// that shape the results and the data. Non-negative.
int64_t run_fingerprint(const std::vector<FlagSetting>& flags, uint64_t data_fingerprint);

}  // namespace khsgd
