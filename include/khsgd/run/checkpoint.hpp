// Checkpoints: everything a run depends on after an epoch, so that a stopped run resumes and ends
// exactly as if it had never stopped (bit for bit on CPU).
//
// What is saved: the epoch reached, the parameters and the momentum, the sorter's state (the next
// epoch's order matrix and its counters), the state of every generator, and a fingerprint of the
// flags and the data. What is not: what the run rebuilds identically from the seed (the Linear
// init, SBW's thresholds, KH-SGD's log table) and what sort() resets anyway.
//
// The file: "KHSGDCKP" magic, format version, payload length, payload, a 64-bit FNV-1a checksum
// of the payload (over 8-byte words). Written to a temporary file, synced and renamed, so a crash
// leaves the previous checkpoint or the new one, never half of one. Format 2 adds the flags'
// hashes at the end of the payload; format 1 files (without them) are still read.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "khsgd/base/errors.hpp"
#include "khsgd/sorting/state_io.hpp"

namespace khsgd {

// A checkpoint file that is not whole (truncated, its checksum wrong, not a checkpoint, another
// format version): "PATH: corrupt checkpoint (WHY); ...". A resume that has the previous
// generation falls back to it (trainer.cpp); why() is the reason alone.
class DamagedCheckpoint : public UserError {
 public:
  DamagedCheckpoint(const std::string& path, const std::string& why)
      : UserError(path + ": corrupt checkpoint (" + why +
                  "); remove it and use --overwrite to start the run over"),
        why_(why) {}
  const std::string& why() const { return why_; }

 private:
  std::string why_;
};

struct Checkpoint {
  int64_t epoch = 0;        // epochs finished
  int64_t fingerprint = 0;  // of the flags that shape the run and of the data
  int64_t rank = 0;
  int64_t world_size = 1;
  std::vector<float> theta;
  std::vector<float> velocity;
  std::vector<uint8_t> sorter_state;
  std::vector<uint8_t> cpu_generator;
  std::vector<uint8_t> cuda_generator;  // empty on CPU runs
  std::string metrics_rows;             // rank 0: metrics.csv's rows so far
  // Each result-shaping flag's hash (agreement.hpp's flag_hashes), so that a resume with other
  // flags can name the one that differs; empty in a format-1 file.
  std::vector<int64_t> flag_hashes;
};

// DIR/checkpoint-rankR.bin: every rank keeps its own (ranks on other hosts have their own folder).
std::string checkpoint_path(const std::string& dir, int rank);

// DIR/checkpoint-rankR.previous.bin: the checkpoint the latest one replaced. The ranks replace
// theirs one by one, so a run that stops in between (a rank killed, or out of space, while the
// others have written theirs) leaves ranks one checkpoint apart; the previous generation still
// gives every rank an epoch in common to resume from.
std::string previous_checkpoint_path(const std::string& dir, int rank);

// The highest epoch that every rank holds a checkpoint of, given each rank's latest and previous
// checkpoint epochs (-1: none); -1 when they have none in common.
int64_t common_checkpoint_epoch(const std::vector<int64_t>& latest,
                                const std::vector<int64_t>& previous);

// When a run writes its checkpoint (docs/OPERATIONS.md "Checkpoints and resuming"): after every
// K-th epoch
// (--checkpoint_every K; 0: never by count) and after any epoch that ends S seconds or more after
// the last checkpoint, or after this process began training (--checkpoint_seconds S; 0: never by
// time). Rank 0's schedule decides for every rank. A clean stop writes one whatever the schedule
// says; the last epoch none (a finished run needs none).
class CheckpointSchedule {
 public:
  // `now`: steady-clock seconds when training starts.
  CheckpointSchedule(int64_t every_epochs, double every_seconds, double now);
  bool due(int64_t epoch, double now) const;
  void written(double now) { last_ = now; }

 private:
  int64_t every_epochs_;
  double every_seconds_;
  double last_;
};

// Atomic write (temporary file, fsync, rename). Throws IoError when it cannot be written.
void write_checkpoint(const std::string& path, const Checkpoint& checkpoint);

// This rank's next checkpoint in DIR: `checkpoint` is written in full, then the latest becomes the
// previous one and the new one the latest. Throws IoError when a step fails; a failed write leaves
// both checkpoints as they were.
void write_next_checkpoint(const std::string& dir, int rank, const Checkpoint& checkpoint);

// The previous checkpoint becomes the latest (resuming from it: the later one belongs to epochs
// that will be trained again). Throws IoError when it cannot be renamed.
void promote_previous_checkpoint(const std::string& dir, int rank);

// Deletes this rank's checkpoints (a finished run needs none).
void remove_checkpoints(const std::string& dir, int rank);

// Throws UserError for a missing file or one that is not a regular file (check_regular_entry),
// DamagedCheckpoint for a truncated, corrupt or foreign one. The file is untrusted: its length
// field is checked against its size before the payload is read, and every length inside against
// the bytes that remain (StateReader).
Checkpoint read_checkpoint(const std::string& path);

// The same for a file's bytes held in memory (the fuzz target, tests/fuzz/); `name` names it.
Checkpoint read_checkpoint_from_memory(const std::string& name, const uint8_t* data, size_t size);

}  // namespace khsgd
