// Reading and writing Python torch.save files without Python.
//
// The HMDA files are torch.save((a, b)) archives written from CUDA tensors. LibTorch's
// torch::pickle_load would rebuild them on the GPU (and fails on a CPU-only build), and its
// unpickler crashes on damaged files, so khsgd reads them itself (pt_reader.cpp): the zip
// directory, a checked pickle machine for the objects torch.save writes, every storage to host
// memory whatever device it names. Writing goes through LibTorch's pickler (pt_writer.cpp).
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
// tensors of a dtype other than float32/float64.
std::vector<HostTensor> read_tensor_tuple(const std::string& path);

// Writes `tensors` the way Python's torch.save((t0, t1, ...)) does (zip container), as float32
// unless dtype says "float64". Atomic: written beside `path`, then renamed over it.
void write_tensor_tuple(const std::string& path, const std::vector<HostTensor>& tensors);

// torch.save(t): one tensor, not a tuple (torch.load gives the tensor back).
void write_tensor(const std::string& path, const HostTensor& tensor);

}  // namespace khsgd
