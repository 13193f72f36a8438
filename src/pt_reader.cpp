// Reading torch.save files with a reader of our own: the zip container (zip_archive.cpp) and, here,
// a small pickle machine for exactly the objects torch.save writes for tensors (tuples, lists,
// dicts of them).
//
// Why not LibTorch's unpickler: on malformed input (a truncated or corrupted file) the one in
// LibTorch 1.13 crashes the process (tests/test_fuzz.cpp found a segfault in
// Unpickler::readInstruction). Here every length, index and stack access is checked, every
// record's CRC is verified, and each problem is one UserError naming the file.
#include <sys/stat.h>
#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <sstream>

#include "khsgd/errors.hpp"
#include "khsgd/pt_file.hpp"
#include "khsgd/zip_archive.hpp"

namespace khsgd {

namespace {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Storage {
  std::string dtype;  // "Float", "Double", "Long", ... (torch.<dtype>Storage)
  std::string key;
  int64_t numel = 0;
};

struct Value {
  enum class Kind {
    None,
    Bool,
    Int,
    Float,
    String,
    Tuple,
    List,
    Dict,
    Global,
    Storage,
    Tensor,
    Mark
  };
  Kind kind = Kind::None;
  int64_t i = 0;
  double f = 0.0;
  std::string s;  // String, Global ("module.name")
  std::vector<ValuePtr> items;
  Storage storage;
  HostTensor tensor;
  std::string tensor_dtype;
};

// The names LibTorch's IValue uses for these kinds, for the messages.
const char* kind_name(const Value& v) {
  switch (v.kind) {
    case Value::Kind::None: return "None";
    case Value::Kind::Bool: return "Bool";
    case Value::Kind::Int: return "Int";
    case Value::Kind::Float: return "Double";
    case Value::Kind::String: return "String";
    case Value::Kind::Tuple: return "Tuple";
    case Value::Kind::List: return "GenericList";
    case Value::Kind::Dict: return "GenericDict";
    case Value::Kind::Global: return "Global";
    case Value::Kind::Storage: return "Storage";
    case Value::Kind::Tensor: return "Tensor";
    default: return "Mark";
  }
}

int element_size(const std::string& dtype) {
  static const std::map<std::string, int> sizes = {
      {"Float", 4}, {"Double", 8}, {"Half", 2},         {"BFloat16", 2},
      {"Long", 8},  {"Int", 4},    {"Short", 2},        {"Char", 1},
      {"Byte", 1},  {"Bool", 1},   {"ComplexFloat", 8}, {"ComplexDouble", 16}};
  const auto found = sizes.find(dtype);
  return found == sizes.end() ? 0 : found->second;
}

class Unpickler {
 public:
  Unpickler(const std::string& path, const std::vector<uint8_t>& pickle, const ZipArchive& zip,
            std::string prefix)
      : path_(path), p_(pickle), zip_(zip), prefix_(std::move(prefix)) {}

  ValuePtr run() {
    while (true) {
      const uint8_t op = byte();
      if (op == '.') {  // STOP
        if (stack_.size() != 1 || !marks_.empty()) bad("unbalanced pickle");
        return stack_.back();
      }
      if (!framing(op) && !containers(op) && !scalars(op) && !names_and_memo(op) && !objects(op)) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        bad(std::string("unsupported pickle opcode ") + hex);
      }
    }
  }

 private:
  // Each group of opcodes returns false for an opcode that is not its own. The groups are tables,
  // one opcode a line with its pickle name at the end, so the formatter leaves them as they are.
  // clang-format off
  bool framing(uint8_t op) {
    switch (op) {
      case 0x80: if (byte() > 5) bad("unsupported pickle protocol"); return true;       // PROTO
      case 0x95: take(8); return true;                                                 // FRAME
      case '(': marks_.push_back(stack_.size()); return true;                          // MARK
      default: return false;
    }
  }

  bool containers(uint8_t op) {
    switch (op) {
      case ')': push(tuple({})); return true;                                          // EMPTY_TUPLE
      case 't': push(tuple(pop_to_mark())); return true;                               // TUPLE
      case 0x85: { auto a = pop(); push(tuple({a})); return true; }                     // TUPLE1
      case 0x86: { auto b = pop(), a = pop(); push(tuple({a, b})); return true; }       // TUPLE2
      case 0x87: { auto c = pop(), b = pop(), a = pop(); push(tuple({a, b, c})); return true; }  // TUPLE3
      case ']': push(make(Value::Kind::List)); return true;                             // EMPTY_LIST
      case '}': push(make(Value::Kind::Dict)); return true;                             // EMPTY_DICT
      case 'a': { auto v = pop(); container(Value::Kind::List)->items.push_back(v); return true; }  // APPEND
      case 'e': { auto vs = pop_to_mark(); auto& l = container(Value::Kind::List)->items;         // APPENDS
                  l.insert(l.end(), vs.begin(), vs.end()); return true; }
      case 's': { auto v = pop(), k = pop(); auto& d = container(Value::Kind::Dict)->items;       // SETITEM
                  d.push_back(k); d.push_back(v); return true; }
      case 'u': { auto vs = pop_to_mark(); if (vs.size() % 2) bad("odd SETITEMS");                 // SETITEMS
                  auto& d = container(Value::Kind::Dict)->items; d.insert(d.end(), vs.begin(), vs.end());
                  return true; }
      default: return false;
    }
  }

  bool scalars(uint8_t op) {
    switch (op) {
      case 'N': push(make(Value::Kind::None)); return true;                             // NONE
      case 0x88: case 0x89: { auto v = make(Value::Kind::Bool); v->i = op == 0x88; push(v); return true; }
      case 'K': push(integer(byte())); return true;                                     // BININT1
      case 'M': push(integer(static_cast<int64_t>(le(2)))); return true;                // BININT2
      case 'J': push(integer(static_cast<int32_t>(le(4)))); return true;                // BININT
      case 0x8a: {                                                                      // LONG1
        const int n = byte();
        if (n > 8) bad("integer too large");
        uint64_t raw = le(n);
        if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~uint64_t{0} << (8 * n);
        push(integer(static_cast<int64_t>(raw)));
        return true;
      }
      case 'G': {                                                                       // BINFLOAT
        uint64_t raw = 0;
        for (int k = 0; k < 8; ++k) raw = (raw << 8) | byte();
        auto v = make(Value::Kind::Float);
        std::memcpy(&v->f, &raw, sizeof raw);
        push(v);
        return true;
      }
      case 'X': push(string(le(4))); return true;                                       // BINUNICODE
      case 0x8c: push(string(byte())); return true;                                     // SHORT_BINUNICODE
      case 'T': push(string(le(4))); return true;                                       // BINSTRING
      case 'U': push(string(byte())); return true;                                      // SHORT_BINSTRING
      default: return false;
    }
  }

  bool names_and_memo(uint8_t op) {
    switch (op) {
      case 'c': {                                                                       // GLOBAL
        const std::string module = line(), name = line();
        push(global(module, name));
        return true;
      }
      case 0x93: {                                                                      // STACK_GLOBAL
        auto name = pop(), module = pop();
        if (name->kind != Value::Kind::String || module->kind != Value::Kind::String) bad("bad STACK_GLOBAL");
        push(global(module->s, name->s));
        return true;
      }
      case 'q': memo(byte()); return true;                                              // BINPUT
      case 'r': memo(le(4)); return true;                                               // LONG_BINPUT
      case 0x94: memo(memo_.size()); return true;                                       // MEMOIZE
      case 'h': push(recall(byte())); return true;                                      // BINGET
      case 'j': push(recall(le(4))); return true;                                       // LONG_BINGET
      default: return false;
    }
  }

  bool objects(uint8_t op) {
    switch (op) {
      case 'Q': push(persistent(pop())); return true;                                   // BINPERSID
      case 'R': { auto args = pop(), callable = pop(); push(reduce(callable, args)); return true; }  // REDUCE
      case 'b': pop(); return true;                                                     // BUILD: state ignored
      default: return false;
    }
  }
  // clang-format on

  [[noreturn]] void bad(const std::string& why) const {
    fail_unreadable(path_, why + " at byte " + std::to_string(at_) + " of data.pkl");
  }
  uint8_t byte() {
    if (at_ >= p_.size()) bad("the pickle ends early");
    return p_[at_++];
  }
  const uint8_t* take(uint64_t n) {
    if (n > p_.size() - at_) bad("the pickle ends early");
    const uint8_t* start = &p_[at_];
    at_ += n;
    return start;
  }
  uint64_t le(int n) {
    const uint8_t* b = take(static_cast<uint64_t>(n));
    uint64_t value = 0;
    for (int k = n - 1; k >= 0; --k) value = (value << 8) | b[k];
    return value;
  }
  std::string line() {
    std::string text;
    for (char c = static_cast<char>(byte()); c != '\n'; c = static_cast<char>(byte())) {
      text += c;
      if (text.size() > 256) bad("a name is too long");
    }
    return text;
  }
  ValuePtr make(Value::Kind kind) {
    auto v = std::make_shared<Value>();
    v->kind = kind;
    return v;
  }
  ValuePtr integer(int64_t i) {
    auto v = make(Value::Kind::Int);
    v->i = i;
    return v;
  }
  ValuePtr string(uint64_t n) {
    auto v = make(Value::Kind::String);
    const uint8_t* b = take(n);
    v->s.assign(reinterpret_cast<const char*>(b), n);
    return v;
  }
  ValuePtr tuple(std::vector<ValuePtr> items) {
    auto v = make(Value::Kind::Tuple);
    v->items = std::move(items);
    return v;
  }
  ValuePtr global(const std::string& module, const std::string& name) {
    auto v = make(Value::Kind::Global);
    v->s = module + "." + name;
    return v;
  }
  void push(ValuePtr v) {
    if (stack_.size() > 100000) bad("the pickle's stack grows without bound");
    stack_.push_back(std::move(v));
  }
  ValuePtr pop() {
    if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size()))
      bad("pop from an empty stack");
    ValuePtr v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::vector<ValuePtr> pop_to_mark() {
    if (marks_.empty()) bad("no MARK to pop to");
    const size_t mark = marks_.back();
    marks_.pop_back();
    if (mark > stack_.size()) bad("a MARK points past the stack");
    std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  ValuePtr container(Value::Kind kind) {
    if (stack_.empty() || stack_.back()->kind != kind)
      bad("append to something that is not a container");
    return stack_.back();
  }
  void memo(uint64_t index) {
    if (stack_.empty()) bad("memoize on an empty stack");
    if (index > 1000000) bad("memo index out of range");
    memo_[index] = stack_.back();
  }
  ValuePtr recall(uint64_t index) {
    const auto found = memo_.find(index);
    if (found == memo_.end()) bad("reference to an unknown memo entry");
    return found->second;
  }

  // ('storage', torch.<Type>Storage, key, location, numel): the location (cuda:0 for the real
  // files) is ignored, everything is read to host memory.
  ValuePtr persistent(const ValuePtr& id) {
    if (id->kind != Value::Kind::Tuple || id->items.size() != 5 ||
        id->items[0]->kind != Value::Kind::String || id->items[0]->s != "storage" ||
        id->items[1]->kind != Value::Kind::Global || id->items[2]->kind != Value::Kind::String ||
        id->items[4]->kind != Value::Kind::Int)
      bad("unsupported persistent id");
    const std::string& type = id->items[1]->s;
    const std::string prefix = "torch.", suffix = "Storage";
    if (type.rfind(prefix, 0) != 0 || type.size() <= prefix.size() + suffix.size() ||
        type.compare(type.size() - suffix.size(), suffix.size(), suffix) != 0)
      bad("unsupported storage type " + type);
    auto v = make(Value::Kind::Storage);
    v->storage.dtype = type.substr(prefix.size(), type.size() - prefix.size() - suffix.size());
    v->storage.key = id->items[2]->s;
    v->storage.numel = id->items[4]->i;
    if (element_size(v->storage.dtype) == 0) bad("unsupported storage type " + type);
    if (v->storage.numel < 0) bad("negative storage size");
    return v;
  }

  ValuePtr reduce(const ValuePtr& callable, const ValuePtr& args) {
    if (callable->kind != Value::Kind::Global || args->kind != Value::Kind::Tuple)
      bad("unsupported REDUCE");
    if (callable->s == "collections.OrderedDict") return make(Value::Kind::Dict);
    if (callable->s == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args->items);
    bad("unsupported object " + callable->s);
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[,
  // metadata])
  ValuePtr rebuild_tensor(const std::vector<ValuePtr>& a) {
    if (a.size() < 4 || a[0]->kind != Value::Kind::Storage || a[1]->kind != Value::Kind::Int ||
        a[2]->kind != Value::Kind::Tuple || a[3]->kind != Value::Kind::Tuple ||
        a[2]->items.size() != a[3]->items.size())
      bad("malformed tensor");
    const Storage& storage = a[0]->storage;
    const int64_t offset = a[1]->i;
    auto v = make(Value::Kind::Tensor);
    v->tensor_dtype = storage.dtype;
    std::vector<int64_t> strides;
    int64_t count = 1;
    int64_t last = offset;  // the highest element the view touches
    bool empty = false;
    for (size_t k = 0; k < a[2]->items.size(); ++k) {
      const ValuePtr& size = a[2]->items[k];
      const ValuePtr& stride = a[3]->items[k];
      if (size->kind != Value::Kind::Int || stride->kind != Value::Kind::Int || size->i < 0 ||
          stride->i < 0 || size->i > (int64_t{1} << 40) || stride->i > (int64_t{1} << 40))
        bad("malformed tensor shape");
      v->tensor.shape.push_back(size->i);
      strides.push_back(stride->i);
      if (size->i == 0)
        empty = true;
      else
        last += (size->i - 1) * stride->i;
      if (count > (int64_t{1} << 34) / std::max<int64_t>(size->i, 1)) bad("tensor too large");
      count *= size->i;
    }
    if (offset < 0 || (!empty && last >= storage.numel)) bad("a tensor reaches past its storage");
    // A view holds no more elements than its storage (so the file's size bounds the allocation).
    if (count > storage.numel) bad("a tensor holds more elements than its storage");
    if (storage.dtype != "Float" && storage.dtype != "Double") return v;  // refused by the caller
    const std::vector<uint8_t>& bytes = storage_bytes(storage);
    v->tensor.dtype = storage.dtype == "Float" ? "float32" : "float64";
    v->tensor.values.resize(empty ? 0 : static_cast<size_t>(count));
    const int rank = static_cast<int>(strides.size());
    bool contiguous = true;
    int64_t expected = 1;  // bounded by count, checked above
    for (int k = rank - 1; k >= 0; --k) {
      if (v->tensor.shape[k] != 1 && strides[k] != expected) contiguous = false;
      expected *= v->tensor.shape[k];
    }
    if (contiguous && storage.dtype == "Float" && !empty) {
      std::memcpy(v->tensor.values.data(), &bytes[offset * 4], static_cast<size_t>(count) * 4);
      return v;
    }
    std::vector<int64_t> index(rank, 0);
    for (int64_t n = 0; n < (empty ? 0 : count); ++n) {
      int64_t element = offset;
      for (int k = 0; k < rank; ++k) element += index[k] * strides[k];
      if (storage.dtype == "Float") {
        std::memcpy(&v->tensor.values[n], &bytes[element * 4], 4);
      } else {
        double d;
        std::memcpy(&d, &bytes[element * 8], 8);
        v->tensor.values[n] = static_cast<float>(d);  // float64 inputs become float32
      }
      for (int k = rank - 1; k >= 0; --k) {
        if (++index[k] < v->tensor.shape[k]) break;
        index[k] = 0;
      }
    }
    return v;
  }

  const std::vector<uint8_t>& storage_bytes(const Storage& storage) {
    auto found = storages_.find(storage.key);
    if (found == storages_.end()) {
      std::vector<uint8_t> bytes = zip_.read(prefix_ + "data/" + storage.key);
      const uint64_t expected = static_cast<uint64_t>(storage.numel) * element_size(storage.dtype);
      if (bytes.size() < expected)
        bad("storage '" + storage.key + "' is shorter than its tensor says");
      found = storages_.emplace(storage.key, std::move(bytes)).first;
    }
    return found->second;
  }

  std::string path_;
  const std::vector<uint8_t>& p_;
  const ZipArchive& zip_;
  std::string prefix_;
  size_t at_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, ValuePtr> memo_;
  std::map<std::string, std::vector<uint8_t>> storages_;
};

std::vector<uint8_t> read_whole_file(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    throw UserError(path + ": file not found (expected a torch.save file)");
  if (!S_ISREG(info.st_mode)) throw UserError(path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot be opened for reading");
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

}  // namespace

std::vector<HostTensor> read_tensor_tuple(const std::string& path) {
  std::vector<uint8_t> bytes = read_whole_file(path);
  if (bytes.size() >= 2 && bytes[0] == 0x80 && bytes[1] <= 5)
    throw UserError(path +
                    ": a pre-1.6 torch.save file (legacy pickle format); re-save it with "
                    "PyTorch >= 1.6 (torch.save(torch.load(f), f)) to get the zip container");
  if (bytes.size() < 4 || bytes[0] != 'P' || bytes[1] != 'K' || bytes[2] != 3 || bytes[3] != 4)
    throw UserError(path +
                    ": not a torch.save file (expected a zip container written by "
                    "torch.save with PyTorch >= 1.6)");
  const ZipArchive zip(path, std::move(bytes));
  // The pickle sits in <archive>/data.pkl; the storages in <archive>/data/<key>.
  std::string prefix;
  bool found = false;
  for (const auto& [name, entry] : zip.entries()) {
    const std::string tail = "data.pkl";
    if (name.size() >= tail.size() &&
        name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
        std::count(name.begin(), name.end(), '/') <= 1) {
      prefix = name.substr(0, name.size() - tail.size());
      found = true;
      break;
    }
  }
  if (!found) fail_unreadable(path, "the archive holds no data.pkl");
  const auto byteorder = zip.entries().find(prefix + "byteorder");
  if (byteorder != zip.entries().end()) {
    const std::vector<uint8_t> order = zip.read(prefix + "byteorder");
    if (std::string(order.begin(), order.end()) != "little")
      fail_unreadable(path, "big-endian data is not supported");
  }
  const std::vector<uint8_t> pickle = zip.read(prefix + "data.pkl");
  Unpickler unpickler(path, pickle, zip, prefix);
  const ValuePtr value = unpickler.run();
  if (value->kind != Value::Kind::Tuple)
    throw UserError(path + ": holds a " + kind_name(*value) +
                    ", expected a tuple of tensors as written by torch.save((a, b))");
  std::vector<HostTensor> tensors;
  for (size_t i = 0; i < value->items.size(); ++i) {
    const Value& element = *value->items[i];
    if (element.kind != Value::Kind::Tensor)
      throw UserError(path + ": tuple element " + std::to_string(i) + " is a " +
                      kind_name(element) + ", expected a tensor");
    if (element.tensor_dtype != "Float" && element.tensor_dtype != "Double")
      throw UserError(path + ": tensor " + std::to_string(i) + " has dtype " +
                      element.tensor_dtype + ", expected float32 (or float64)");
    tensors.push_back(element.tensor);
  }
  return tensors;
}

}  // namespace khsgd
