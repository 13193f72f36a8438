#include "khsgd/pt_file.hpp"

// Writing torch.save files through LibTorch's own pickler (so that what we write is what
// PyTorch writes); reading them is pt_reader.cpp's.
#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>


#include "khsgd/errors.hpp"
#include "khsgd/files.hpp"

namespace khsgd {

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
  write_file_atomically(path, std::string(bytes.begin(), bytes.end()));
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
