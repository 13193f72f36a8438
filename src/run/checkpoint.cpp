#include "khsgd/run/checkpoint.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>

#include "khsgd/base/errors.hpp"
#include "khsgd/base/hash.hpp"
#include "khsgd/data/byte_source.hpp"
#include "khsgd/data/files.hpp"
#include "khsgd/run/run_limits.hpp"

namespace khsgd {

namespace {

constexpr char kMagic[8] = {'K', 'H', 'S', 'G', 'D', 'C', 'K', 'P'};
constexpr int64_t kFormatVersion = 2;  // 2: flag_hashes at the end of the payload
constexpr int64_t kOldestFormatVersion = 1;

}  // namespace

CheckpointSchedule::CheckpointSchedule(int64_t every_epochs, double every_seconds, double now)
    : every_epochs_(every_epochs), every_seconds_(every_seconds), last_(now) {}

bool CheckpointSchedule::due(int64_t epoch, double now) const {
  if (every_epochs_ > 0 && epoch % every_epochs_ == 0) return true;
  return every_seconds_ > 0 && now - last_ >= every_seconds_;
}

std::string checkpoint_path(const std::string& dir, int rank) {
  return dir + "/checkpoint-rank" + std::to_string(rank) + ".bin";
}

std::string previous_checkpoint_path(const std::string& dir, int rank) {
  return dir + "/checkpoint-rank" + std::to_string(rank) + ".previous.bin";
}

namespace {

// Where the next checkpoint is written in full before it takes the latest one's place.
std::string next_checkpoint_path(const std::string& dir, int rank) {
  return dir + "/checkpoint-rank" + std::to_string(rank) + ".next.bin";
}

void move_file(const std::string& from, const std::string& to, bool may_be_missing) {
  if (std::rename(from.c_str(), to.c_str()) != 0 && !(may_be_missing && errno == ENOENT))
    throw IoError("cannot rename '" + from + "' to '" + to + "': " + std::strerror(errno));
}

}  // namespace

int64_t common_checkpoint_epoch(const std::vector<int64_t>& latest,
                                const std::vector<int64_t>& previous) {
  auto everyone_has = [&](int64_t epoch) {
    for (size_t r = 0; r < latest.size(); ++r)
      if (latest[r] != epoch && previous[r] != epoch) return false;
    return true;
  };
  int64_t best = -1;
  for (const std::vector<int64_t>* epochs : {&latest, &previous})
    for (const int64_t epoch : *epochs)
      if (epoch > best && everyone_has(epoch)) best = epoch;
  return best;
}

void write_next_checkpoint(const std::string& dir, int rank, const Checkpoint& checkpoint) {
  const std::string latest = checkpoint_path(dir, rank);
  const std::string previous = previous_checkpoint_path(dir, rank);
  // Written in full first, so that a failed write (a full disk) leaves the latest checkpoint in
  // place; then two renames. Stopped between them, the previous one is still there to resume from.
  const std::string next = next_checkpoint_path(dir, rank);
  write_checkpoint(next, checkpoint);
  move_file(latest, previous, /*may_be_missing=*/true);  // none before the first checkpoint
  move_file(next, latest, false);
}

void promote_previous_checkpoint(const std::string& dir, int rank) {
  move_file(previous_checkpoint_path(dir, rank), checkpoint_path(dir, rank), false);
}

void remove_checkpoints(const std::string& dir, int rank) {
  for (const std::string& path : {checkpoint_path(dir, rank), previous_checkpoint_path(dir, rank),
                                  next_checkpoint_path(dir, rank)})
    std::remove(path.c_str());
}

void write_checkpoint(const std::string& path, const Checkpoint& c) {
  StateWriter payload;
  payload.i64(c.epoch);
  payload.i64(c.fingerprint);
  payload.i64(c.rank);
  payload.i64(c.world_size);
  payload.floats(c.theta);
  payload.floats(c.velocity);
  payload.bytes(c.sorter_state);
  payload.bytes(c.cpu_generator);
  payload.bytes(c.cuda_generator);
  payload.bytes(std::vector<uint8_t>(c.metrics_rows.begin(), c.metrics_rows.end()));
  const auto* hashes = reinterpret_cast<const uint8_t*>(c.flag_hashes.data());
  payload.bytes(std::vector<uint8_t>(hashes, hashes + c.flag_hashes.size() * sizeof(int64_t)));

  std::vector<uint8_t> bytes(kMagic, kMagic + sizeof kMagic);
  StateWriter header;
  header.i64(kFormatVersion);
  header.i64(static_cast<int64_t>(payload.data().size()));
  bytes.insert(bytes.end(), header.data().begin(), header.data().end());
  bytes.insert(bytes.end(), payload.data().begin(), payload.data().end());
  const uint64_t checksum = fnv1a64(payload.data().data(), payload.data().size());
  const auto* sum = reinterpret_cast<const uint8_t*>(&checksum);
  bytes.insert(bytes.end(), sum, sum + sizeof checksum);

  // Synced before the rename publishes it: a crash leaves the old checkpoint or the new one.
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()), /*durable=*/true);
}

namespace {

// The file's framing is checked against its size before the payload is read: a length field that
// does not match refuses the file without reading (or allocating) what it declares.
Checkpoint parse_checkpoint(const std::string& path, const ByteSource& source) {
  const size_t header = sizeof kMagic + 2 * sizeof(int64_t);
  auto corrupt = [&](const std::string& why) { return DamagedCheckpoint(path, why); };
  if (!source.holds(0, header + sizeof(uint64_t))) throw corrupt("not a khsgd checkpoint");
  const std::vector<uint8_t> head = source.read(0, header);
  if (std::memcmp(head.data(), kMagic, sizeof kMagic) != 0) throw corrupt("not a khsgd checkpoint");
  int64_t version, length;
  std::memcpy(&version, head.data() + sizeof kMagic, sizeof version);
  std::memcpy(&length, head.data() + sizeof kMagic + sizeof version, sizeof length);
  // A newer format is not damage: it must stop the resume, not be passed over for the previous
  // checkpoint (which would then replace it).
  if (version > kFormatVersion && version <= kFormatVersion + 100)
    throw UserError(path + ": written by a newer khsgd (checkpoint format " +
                    std::to_string(version) + "; this build reads " +
                    std::to_string(kOldestFormatVersion) + " to " + std::to_string(kFormatVersion) +
                    "): resume with that build");
  if (version < kOldestFormatVersion || version > kFormatVersion)
    throw corrupt("format version " + std::to_string(version) + ", this build reads " +
                  std::to_string(kOldestFormatVersion) + " to " + std::to_string(kFormatVersion));
  if (length < 0 || static_cast<uint64_t>(length) != source.size() - header - sizeof(uint64_t))
    throw corrupt("its length field does not match the file size (truncated?)");
  // A file as large as it says can still be larger than memory (a sparse file): refused with the
  // number instead of read into a failing allocation.
  check_memory(length, path + " (a checkpoint of " + std::to_string(length) + " bytes)");
  const std::vector<uint8_t> payload = source.read(header, static_cast<uint64_t>(length));
  const std::vector<uint8_t> sum = source.read(header + payload.size(), sizeof(uint64_t));
  uint64_t checksum;
  std::memcpy(&checksum, sum.data(), sizeof checksum);
  if (checksum != fnv1a64(payload.data(), payload.size())) throw corrupt("checksum mismatch");

  StateReader reader(payload, path);
  Checkpoint c;
  c.epoch = reader.i64();
  c.fingerprint = reader.i64();
  c.rank = reader.i64();
  c.world_size = reader.i64();
  c.theta = reader.floats();
  c.velocity = reader.floats();
  c.sorter_state = reader.bytes();
  c.cpu_generator = reader.bytes();
  c.cuda_generator = reader.bytes();
  const std::vector<uint8_t> rows = reader.bytes();
  c.metrics_rows.assign(rows.begin(), rows.end());
  if (version >= 2) {
    const std::vector<uint8_t> hashes = reader.bytes();
    if (hashes.size() % sizeof(int64_t) != 0) throw corrupt("a flag hash cut short");
    c.flag_hashes.resize(hashes.size() / sizeof(int64_t));
    if (!hashes.empty()) std::memcpy(c.flag_hashes.data(), hashes.data(), hashes.size());
  }
  if (!reader.at_end()) throw corrupt("trailing bytes");
  return c;
}

}  // namespace

Checkpoint read_checkpoint(const std::string& path) {
  // In the run folder: never a link or a FIFO (check_regular_entry names what is there instead;
  // the open itself is O_NOFOLLOW, so a link swapped in between is refused too). FileSource then
  // reads it piece by piece, its framing checked before the payload.
  if (!check_regular_entry(path)) throw UserError(path + ": no checkpoint to resume from");
  const FileSource file(path, open_regular_for_read(path));
  return parse_checkpoint(path, file);
}

Checkpoint read_checkpoint_from_memory(const std::string& name, const uint8_t* data, size_t size) {
  const MemorySource memory(data, size);
  return parse_checkpoint(name, memory);
}

}  // namespace khsgd
