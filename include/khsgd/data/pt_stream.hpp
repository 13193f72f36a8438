// torch.save files written as they are produced, for files whose objects grow with the epochs
// (the reference's results.pt and time/time-R.pt: several tensors per epoch), and every other
// file a run writes (--save_grads' tensors), without LibTorch.
//
// Built whole, through LibTorch's pickler (pt_writer.cpp), such an object costs about 8 KB of
// memory per epoch while it is written (a tensor, its pickler memo entries and its zip record per
// value, then the whole file as one string): 20 000 epochs added 130 MB to a run's peak. Here the
// object is described by a function that emits it value by value (SavedSource), run twice: once
// to write each tensor's storage record, once to write the pickle. What stays in memory per value
// is a zip directory entry (16 bytes) and, for strings used as keys, their pickle memo number.
//
// The bytes are those LibTorch's pickler and PyTorchStreamWriter write for the same object
// (write_saved_object), which the tests check: same pickle opcodes and memo numbers, same zip
// records, alignment, data descriptors and zip64 end records.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "khsgd/data/pt_file.hpp"

namespace khsgd {

// Receives an object's values in order: dict and list brackets, keys, floats and tensors.
class SavedEmitter {
 public:
  virtual ~SavedEmitter() = default;
  virtual void begin_dict() = 0;
  virtual void key(const std::string& key) = 0;  // inside a dict, before each value
  virtual void end_dict() = 0;
  virtual void begin_list() = 0;
  virtual void end_list() = 0;
  virtual void real(double value) = 0;  // a Python float
  // A float32 tensor of `shape` (empty: 0-dim) holding `values` (row-major).
  virtual void tensor(const std::vector<int64_t>& shape, const float* values, size_t count) = 0;
};

// Emits one object, the same each time it is called.
using SavedSource = std::function<void(SavedEmitter&)>;

// The object as a tree (for tests and small objects).
SavedObject saved_object_of(const SavedSource& source);

// torch.save(object) streamed to path + ".partial", then renamed over `path`. Throws IoError
// naming the file (the temporary removed, an older file at `path` kept).
void write_saved_stream(const std::string& path, const SavedSource& source);

}  // namespace khsgd
