#include "khsgd/pt_file.hpp"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import_read.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdio>
#include <fstream>
#include <sys/stat.h>

#include "khsgd/errors.hpp"

namespace khsgd {

namespace {

std::string first_line(const std::string& text) {
  const size_t end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

// Checks what can be told from the first bytes, so that the common mistakes get a precise message
// instead of an unpickler backtrace.
void check_container(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    throw UserError(path + ": file not found (expected a torch.save file)");
  if (!S_ISREG(info.st_mode)) throw UserError(path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot be opened for reading");
  unsigned char head[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(head), 4);
  const std::streamsize got = in.gcount();
  if (got >= 2 && head[0] == 0x80 && head[1] <= 5)
    throw UserError(path +
                    ": a pre-1.6 torch.save file (legacy pickle format); re-save it with "
                    "PyTorch >= 1.6 (torch.save(torch.load(f), f)) to get the zip container");
  if (got < 4 || head[0] != 'P' || head[1] != 'K' || head[2] != 3 || head[3] != 4)
    throw UserError(path + ": not a torch.save file (expected a zip container written by "
                           "torch.save with PyTorch >= 1.6)");
}

HostTensor to_host(const at::Tensor& tensor, const std::string& path, size_t index) {
  HostTensor out;
  const auto type = tensor.scalar_type();
  if (type != at::kFloat && type != at::kDouble)
    throw UserError(path + ": tensor " + std::to_string(index) + " has dtype " +
                    std::string(c10::toString(type)) + ", expected float32 (or float64)");
  out.dtype = type == at::kFloat ? "float32" : "float64";
  for (int64_t size : tensor.sizes()) out.shape.push_back(size);
  const at::Tensor flat = tensor.to(at::kFloat).contiguous();
  out.values.assign(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
  return out;
}

}  // namespace

std::vector<HostTensor> read_tensor_tuple(const std::string& path) {
  check_container(path);
  c10::IValue value;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    // Map every storage to the CPU, whatever device the pickle names (the real files say cuda:0).
    value = torch::jit::readArchiveAndTensors("data", "", "data/", c10::nullopt, c10::nullopt,
                                              c10::Device(c10::kCPU), reader);
  } catch (const c10::Error& e) {
    throw UserError(path + ": cannot be read as a torch.save file: " +
                    first_line(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw UserError(path + ": cannot be read as a torch.save file: " + first_line(e.what()));
  }
  if (!value.isTuple())
    throw UserError(path + ": holds a " + value.tagKind() +
                    ", expected a tuple of tensors as written by torch.save((a, b))");
  std::vector<HostTensor> tensors;
  const auto& elements = value.toTupleRef().elements();
  for (size_t i = 0; i < elements.size(); ++i) {
    if (!elements[i].isTensor())
      throw UserError(path + ": tuple element " + std::to_string(i) + " is a " +
                      elements[i].tagKind() + ", expected a tensor");
    tensors.push_back(to_host(elements[i].toTensor(), path, i));
  }
  return tensors;
}

namespace {

c10::IValue to_ivalue(const HostTensor& t) {
  at::Tensor tensor = at::empty(t.shape, at::kFloat);
  if (static_cast<size_t>(tensor.numel()) != t.values.size())
    throw std::invalid_argument("write_tensor: shape and value count disagree");
  std::copy(t.values.begin(), t.values.end(), tensor.data_ptr<float>());
  if (t.dtype == "float64") tensor = tensor.to(at::kDouble);
  return tensor;
}

void write_ivalue(const std::string& path, const c10::IValue& value) {
  const std::vector<char> bytes = torch::jit::pickle_save(value);
  const std::string partial = path + ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw UserError(path + ": cannot be written");
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0)
    throw UserError(path + ": cannot be written (rename failed)");
}

}  // namespace

void write_tensor_tuple(const std::string& path, const std::vector<HostTensor>& tensors) {
  std::vector<c10::IValue> elements;
  for (const HostTensor& t : tensors) elements.push_back(to_ivalue(t));
  write_ivalue(path, c10::ivalue::Tuple::create(elements));
}

void write_tensor(const std::string& path, const HostTensor& tensor) {
  write_ivalue(path, to_ivalue(tensor));
}

}  // namespace khsgd
