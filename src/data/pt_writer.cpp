#include "khsgd/data/pt_file.hpp"

// Writing torch.save files through LibTorch's own pickler (so that what we write is what
// PyTorch writes); reading them is pt_reader.cpp's.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include "khsgd/base/errors.hpp"
#include "khsgd/data/files.hpp"

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

// Lists and dicts are generic (element type Any): a typed list would be pickled through
// torch.jit._pickle.build_doublelist and friends, which torch.load(weights_only=True) refuses.
c10::IValue to_ivalue(const SavedObject& object) {
  switch (object.kind) {
    case SavedObject::Kind::Float: return object.number;
    case SavedObject::Kind::Tensor: return to_ivalue(object.tensor);
    case SavedObject::Kind::List: {
      c10::impl::GenericList list(c10::AnyType::get());
      for (const SavedObject& item : object.items) list.push_back(to_ivalue(item));
      return list;
    }
    case SavedObject::Kind::Dict: break;
  }
  c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
  for (size_t i = 0; i < object.keys.size(); ++i)
    dict.insert(object.keys[i], to_ivalue(object.items[i]));
  return dict;
}

// torch::jit::pickle_save's container (archive/data.pkl plus one record per storage), but with
// aggregates left untagged: the tag is a call to torch.jit._pickle.restore_type_tag, a global
// that torch.load(weights_only=True), the default since PyTorch 2.6, refuses to load.
std::string torch_save_bytes(const c10::IValue& value) {
  std::string pickle;
  torch::jit::Pickler pickler([&](const char* bytes, size_t size) { pickle.append(bytes, size); },
                              /*tensor_table=*/nullptr, /*type_renamer=*/nullptr,
                              /*memoized_class_types=*/nullptr, /*get_tensor_id=*/nullptr,
                              /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::string container;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t size) {
      container.append(static_cast<const char*>(bytes), size);
      return size;
    });
    const std::vector<at::Tensor>& storages = pickler.tensorData();
    for (size_t i = 0; i < storages.size(); ++i) {
      const torch::jit::WriteableTensorData data = torch::jit::getWriteableTensorData(storages[i]);
      writer.writeRecord("data/" + std::to_string(i), data.data(), data.sizeInBytes());
    }
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  }  // the writer's destructor writes the zip directory
  return container;
}

void write_ivalue(const std::string& path, const c10::IValue& value) {
  write_file_atomically(path, torch_save_bytes(value));
}

}  // namespace

void write_tensor_tuple(const std::string& path, const std::vector<HostTensor>& tensors) {
  std::vector<c10::IValue> elements;
  elements.reserve(tensors.size());
  for (const HostTensor& t : tensors) elements.push_back(to_ivalue(t));
  write_ivalue(path, c10::ivalue::Tuple::create(elements));
}

void write_tensor(const std::string& path, const HostTensor& tensor) {
  write_ivalue(path, to_ivalue(tensor));
}

void write_saved_object(const std::string& path, const SavedObject& object) {
  write_ivalue(path, to_ivalue(object));
}

}  // namespace khsgd
