// How the ranks stay in step around the phases of a run: every rank says whether its part went
// well, and all go on together or all stop together, each with one line. Without this, a rank that
// fails alone leaves the others waiting in their next collective until the timeout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "khsgd/app/config.hpp"
#include "khsgd/base/errors.hpp"
#include "khsgd/comm/comm.hpp"

namespace khsgd {

// What went wrong on a rank, as the ranks tell each other: bad input (UserError, exit 2) or a
// failed write (IoError, exit 1).
enum class Failure : int64_t { None = 0, BadInput = 1, Io = 2 };

// Every rank reports its own failure (Failure::None and "" when none). If any rank failed, every
// rank throws: the failing rank its own message, the others "rank R could not STAGE (its error
// is printed above); stopping", each as the error type of rank R's failure.
void agree(Communicator& comm, Failure own_failure, const std::string& message, const char* stage);

// Runs `phase` on this rank, then agrees on how it went: a UserError or IoError on any rank stops
// all.
template <typename Phase>
void run_agreed(Communicator& comm, const char* stage, Phase&& phase) {
  Failure failure = Failure::None;
  std::string message;
  try {
    phase();
  } catch (const UserError& e) {
    failure = Failure::BadInput;
    message = e.what();
  } catch (const IoError& e) {
    failure = Failure::Io;
    message = e.what();
  }
  agree(comm, failure, message, stage);
}

// What the ranks decide together at the end of every epoch, in one collective.
struct EpochDecision {
  bool checkpoint = false;  // write a checkpoint now (rank 0's schedule, or a stop)
  int stop_signal = 0;      // stop after this epoch: the signal of the lowest rank that got one
};

// Every rank says whether its writes of the epoch failed (`own_io_failure`, "" when not) and
// which stop signal it received (0: none); rank 0 also whether a checkpoint is due (the others'
// `checkpoint_due` is ignored, so that all follow one clock). A failed write on any rank throws
// IoError on every rank, as agree() does.
EpochDecision agree_after_epoch(Communicator& comm, const std::string& own_io_failure,
                                int own_signal, bool checkpoint_due);

// The ranks compare every behaviour flag and the data before anyone trains. A mismatch is one
// line on every rank naming the first flag that differs (or the data).
void agree_on_settings(Communicator& comm, const std::vector<FlagSetting>& flags,
                       uint64_t data_fingerprint);

// The identity of a run, which a checkpoint must share with the run that resumes it: the flags
// that shape the results and the data. Non-negative.
int64_t run_fingerprint(const std::vector<FlagSetting>& flags, uint64_t data_fingerprint);

// The hash of each flag that shapes the results, in order: what a checkpoint records so that a
// resume with other flags can name the one that differs.
std::vector<int64_t> flag_hashes(const std::vector<FlagSetting>& flags);

// The first flag whose hash differs from `recorded` (flag_hashes of the run that wrote it), as the
// ranks' agreement names it: "--momentum differs; here it is '0.9'". "" when none does (the data
// differs, then) or when `recorded` comes from a build with other flags.
std::string first_differing_flag(const std::vector<FlagSetting>& flags,
                                 const std::vector<int64_t>& recorded);

}  // namespace khsgd
