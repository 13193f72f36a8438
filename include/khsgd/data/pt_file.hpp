// Reading and writing Python torch.save files without Python.
//
// The HMDA files are torch.save((a, b)) archives written from CUDA tensors. LibTorch's
// torch::pickle_load would rebuild them on the GPU (and fails on a CPU-only build), and its
// unpickler crashes on damaged files, so khsgd reads them itself (pt_reader.cpp): the zip
// directory, a checked pickle machine for the objects torch.save writes, every storage to host
// memory whatever device it names. A run writes its files streamed (pt_stream.hpp), with the bytes
// of LibTorch's pickler, which writes below (pt_writer.cpp): the tests' files, and the oracle the
// streamed bytes are checked against.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace khsgd {

// A tensor copied to host memory as float32, row-major.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
  std::string dtype;  // dtype in the file ("float32", "float64"); values are float32 either way
};

// The elements of the tuple saved in `path`. Throws UserError naming the file for a missing or
// unreadable file, a pre-1.6 (non-zip) torch.save file, anything but a tuple of tensors, and
// tensors of a dtype other than float32/float64, and for a file that declares what it does not
// hold (sizes, extents, nesting: each is checked before it is used). Reads only what the zip
// directory declares, so a huge file that is not a torch.save file is refused at once.
std::vector<HostTensor> read_tensor_tuple(const std::string& path);

// The same for a file's bytes held in memory (the fuzz targets, tests/fuzz/); `name` names it in
// the errors. read_tensor_tuple reads the file through the same reader, piece by piece.
std::vector<HostTensor> read_tensor_tuple_from_memory(const std::string& name, const uint8_t* data,
                                                      size_t size);

// Writes `tensors` the way Python's torch.save((t0, t1, ...)) does (zip container), as float32
// unless dtype says "float64". Atomic: written beside `path`, then renamed over it.
void write_tensor_tuple(const std::string& path, const std::vector<HostTensor>& tensors);

// torch.save(t): one tensor, not a tuple (torch.load gives the tensor back).
void write_tensor(const std::string& path, const HostTensor& tensor);

// An object of the kinds the reference's result files hold: dicts with string keys (kept in
// insertion order), lists, Python floats and float32 tensors.
struct SavedObject {
  enum class Kind { Dict, List, Float, Tensor };
  Kind kind = Kind::Dict;
  double number = 0.0;             // Float
  HostTensor tensor;               // Tensor (shape {} for a 0-dim tensor)
  std::vector<std::string> keys;   // Dict: keys[i] names items[i]
  std::vector<SavedObject> items;  // Dict values, List elements

  static SavedObject dict() { return SavedObject{}; }
  static SavedObject list() {
    SavedObject o;
    o.kind = Kind::List;
    return o;
  }
  static SavedObject real(double value) {
    SavedObject o;
    o.kind = Kind::Float;
    o.number = value;
    return o;
  }
  static SavedObject float32_tensor(std::vector<int64_t> shape, std::vector<float> values) {
    SavedObject o;
    o.kind = Kind::Tensor;
    o.tensor = HostTensor{std::move(shape), std::move(values), "float32"};
    return o;
  }
  // Dict: adds `key` (a new one) after the others.
  void set(const std::string& key, SavedObject value) {
    keys.push_back(key);
    items.push_back(std::move(value));
  }
  // List: appends.
  void append(SavedObject value) { items.push_back(std::move(value)); }
};

// torch.save(object): Python's torch.load (weights_only or not) returns the same nesting as
// dict, list, float and CPU torch.Tensor, as for a file Python wrote. Atomic like the others.
void write_saved_object(const std::string& path, const SavedObject& object);

}  // namespace khsgd
