#include "khsgd/run/agreement.hpp"

#include "khsgd/base/hash.hpp"

namespace khsgd {

namespace {

uint64_t hash_text(const std::string& text, uint64_t hash = kFnvOffset) {
  return fnv1a64(text.data(), text.size() + 1, hash);  // with the terminator: "ab","c" != "a","bc"
}

uint64_t hash_flag(const FlagSetting& f, uint64_t hash = kFnvOffset) {
  return hash_text(f.value, hash_text(f.flag, hash));
}

// Collectives carry int64; hashes travel as their bit pattern.
int64_t as_value(uint64_t hash) { return static_cast<int64_t>(hash); }

// The first rank whose value differs from rank 0's, or -1.
int first_differing_rank(const std::vector<int64_t>& values) {
  for (size_t r = 1; r < values.size(); ++r)
    if (values[r] != values[0]) return static_cast<int>(r);
  return -1;
}

// How a differing flag is named, to the ranks (agree_on_settings) and to a resume (checkpoint).
std::string differs(const FlagSetting& f) {
  return "--" + std::string(f.flag) + " differs; here it is '" + f.value + "'";
}

[[noreturn]] void refuse(int rank, const std::string& what) {
  throw UserError("rank " + std::to_string(rank) +
                  " was started with different flags or different data than rank 0 (" + what +
                  "); every rank must get the same flags and the same data files");
}

}  // namespace

void agree(Communicator& comm, Failure own_failure, const std::string& message, const char* stage) {
  const std::vector<int64_t> all = comm.all_gather_value(static_cast<int64_t>(own_failure));
  if (own_failure == Failure::Io) throw IoError(message);
  if (own_failure != Failure::None) throw UserError(message);
  for (int r = 0; r < comm.size(); ++r) {
    if (all[r] == static_cast<int64_t>(Failure::None)) continue;
    const std::string line = "rank " + std::to_string(r) + " could not " + stage +
                             " (its error is printed above); stopping";
    if (all[r] == static_cast<int64_t>(Failure::Io)) throw IoError(line);
    throw UserError(line);
  }
}

namespace {

// One int64 per rank carries the end-of-epoch agreement.
constexpr int64_t kSignalBits = 0xff;
constexpr int64_t kCheckpointDue = 1 << 8;
constexpr int64_t kWriteFailed = 1 << 9;

}  // namespace

EpochDecision agree_after_epoch(Communicator& comm, const std::string& own_io_failure,
                                int own_signal, bool checkpoint_due) {
  const int64_t mine = (own_signal & kSignalBits) | (checkpoint_due ? kCheckpointDue : 0) |
                       (own_io_failure.empty() ? 0 : kWriteFailed);
  const std::vector<int64_t> all = comm.all_gather_value(mine);
  if (!own_io_failure.empty()) throw IoError(own_io_failure);
  EpochDecision decision;
  for (int r = 0; r < comm.size(); ++r) {
    if (all[r] & kWriteFailed)
      throw IoError("rank " + std::to_string(r) +
                    " could not write its results (its error is printed above); stopping");
    if (decision.stop_signal == 0) decision.stop_signal = static_cast<int>(all[r] & kSignalBits);
  }
  decision.checkpoint = (all[0] & kCheckpointDue) != 0 || decision.stop_signal != 0;
  return decision;
}

void agree_on_settings(Communicator& comm, const std::vector<FlagSetting>& flags,
                       uint64_t data_fingerprint) {
  uint64_t all_settings = data_fingerprint;
  for (const FlagSetting& f : flags) all_settings = hash_flag(f, all_settings);
  if (first_differing_rank(comm.all_gather_value(as_value(all_settings))) < 0) return;
  // Something differs: every rank takes the same second round, flag by flag, to name it.
  for (const FlagSetting& f : flags) {
    const int rank = first_differing_rank(comm.all_gather_value(as_value(hash_flag(f))));
    if (rank >= 0) refuse(rank, differs(f));
  }
  const int rank = first_differing_rank(comm.all_gather_value(as_value(data_fingerprint)));
  refuse(rank < 0 ? 1 : rank, "the data differs");
}

int64_t run_fingerprint(const std::vector<FlagSetting>& flags, uint64_t data_fingerprint) {
  uint64_t hash = data_fingerprint;
  for (const FlagSetting& f : flags)
    if (f.shapes_results) hash = hash_flag(f, hash);
  return static_cast<int64_t>(hash >> 1);
}

std::vector<int64_t> flag_hashes(const std::vector<FlagSetting>& flags) {
  std::vector<int64_t> hashes;
  for (const FlagSetting& f : flags)
    if (f.shapes_results) hashes.push_back(as_value(hash_flag(f)));
  return hashes;
}

std::string first_differing_flag(const std::vector<FlagSetting>& flags,
                                 const std::vector<int64_t>& recorded) {
  const std::vector<int64_t> here = flag_hashes(flags);
  if (here.size() != recorded.size()) return "";  // another build's list of flags
  size_t i = 0;
  for (const FlagSetting& f : flags) {
    if (!f.shapes_results) continue;
    if (here[i] != recorded[i]) return differs(f);
    ++i;
  }
  return "";
}

}  // namespace khsgd
