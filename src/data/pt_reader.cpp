// Reading torch.save files with a reader of our own: the zip container (zip_archive.cpp) and, here,
// a small pickle machine for exactly the objects torch.save writes for tensors (tuples, lists,
// dicts of them).
//
// Why not LibTorch's unpickler: on malformed input (a truncated or corrupted file) the one in
// LibTorch 1.13 crashes the process (tests/test_fuzz.cpp found a segfault in
// Unpickler::readInstruction). Here every length, index and stack access is checked, every
// record's CRC is verified, and each problem is one UserError naming the file. The file is
// untrusted: every size, extent and offset it declares is checked with overflow-safe arithmetic
// before it is used, nesting is bounded, and the objects live in one arena, so that freeing them
// never recurses (a chain of 200 000 nested tuples would overflow the stack otherwise) and a
// cycle built through the memo cannot leak. tests/fuzz/ fuzzes it with libFuzzer.
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <map>
#include <memory>

#include "khsgd/base/errors.hpp"
#include "khsgd/data/byte_source.hpp"
#include "khsgd/data/pt_file.hpp"
#include "khsgd/data/zip_archive.hpp"

namespace khsgd {

namespace {

// Deeper than any file torch.save writes for tensors (a tuple of tensors is 3 deep: the tuple,
// the tensor, its size tuple), far below what would strain anything.
constexpr int kMaxDepth = 1000;
// Objects one pickle may create: a real file makes tens; each costs a few hundred bytes.
constexpr size_t kMaxObjects = 1000000;
// Tensors rebuilt from one file hold at most the file's size plus this many values: views share
// their storage, so without a bound a small file could ask for its storage many times over.
constexpr uint64_t kValueAllowance = uint64_t{1} << 24;
constexpr size_t kMaxStack = 100000;  // entries of the pickle's stack, and of its marks
// What one opcode may copy from an object the memo hands back any number of times, so that the
// copies stay linear in the pickle's size: names (GLOBAL's lines, STACK_GLOBAL's strings, storage
// keys) and tensor ranks (PyTorch's own limit is 64 dimensions).
constexpr size_t kMaxName = 256;
constexpr size_t kMaxRank = 64;

struct Value;
using ValuePtr = Value*;  // owned by the Unpickler's arena

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
  int depth = 0;  // of the nesting below it (0: no items); bounded by kMaxDepth
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
  // `value_budget`: how many tensor values the file may rebuild in all.
  Unpickler(const std::string& path, const std::vector<uint8_t>& pickle, const ZipArchive& zip,
            std::string prefix, uint64_t value_budget)
      : path_(path),
        p_(pickle),
        zip_(zip),
        prefix_(std::move(prefix)),
        values_left_(value_budget) {}

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
      case '(': mark(); return true;                                                   // MARK
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
      case 'a': { auto v = pop(); extend(container(Value::Kind::List), {v}); return true; }       // APPEND
      case 'e': { auto vs = pop_to_mark(); extend(container(Value::Kind::List), vs); return true; } // APPENDS
      case 's': { auto v = pop(), k = pop(); extend(container(Value::Kind::Dict), {k, v}); return true; }  // SETITEM
      case 'u': { auto vs = pop_to_mark(); if (vs.size() % 2) bad("odd SETITEMS");                 // SETITEMS
                  extend(container(Value::Kind::Dict), vs); return true; }
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
        if (name->s.size() > kMaxName || module->s.size() > kMaxName) bad("a name is too long");
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
    const uint8_t* start = p_.data() + at_;  // at_ may be p_.size() when n is 0
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
      if (text.size() > kMaxName) bad("a name is too long");
    }
    return text;
  }
  ValuePtr make(Value::Kind kind) {
    if (arena_.size() >= kMaxObjects) bad("the pickle creates too many objects");
    arena_.push_back(std::make_unique<Value>());
    arena_.back()->kind = kind;
    return arena_.back().get();
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
  ValuePtr tuple(const std::vector<ValuePtr>& items) {
    auto v = make(Value::Kind::Tuple);
    extend(v, items);
    return v;
  }
  // Adds `items` to the container `c`, which becomes deeper than each of them. A container already
  // inside others does not pass its new depth up to them, so a depth is a lower bound; nothing here
  // recurses over the objects, the bound only refuses what no real file holds.
  void extend(ValuePtr c, const std::vector<ValuePtr>& items) {
    for (const ValuePtr item : items) c->depth = std::max(c->depth, item->depth + 1);
    if (c->depth > kMaxDepth)
      bad("objects nested more than " + std::to_string(kMaxDepth) + " deep");
    c->items.insert(c->items.end(), items.begin(), items.end());
  }
  ValuePtr global(const std::string& module, const std::string& name) {
    auto v = make(Value::Kind::Global);
    v->s = module + "." + name;
    return v;
  }
  void push(ValuePtr v) {
    if (stack_.size() > kMaxStack) bad("the pickle's stack grows without bound");
    stack_.push_back(v);
  }
  void mark() {
    if (marks_.size() > kMaxStack) bad("the pickle's marks grow without bound");
    marks_.push_back(stack_.size());
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
  ValuePtr persistent(const ValuePtr id) {
    if (id->kind != Value::Kind::Tuple || id->items.size() != 5 ||
        id->items[0]->kind != Value::Kind::String || id->items[0]->s != "storage" ||
        id->items[1]->kind != Value::Kind::Global || id->items[2]->kind != Value::Kind::String ||
        id->items[4]->kind != Value::Kind::Int)
      bad("unsupported persistent id");
    const std::string& type = id->items[1]->s;
    const std::string prefix = "torch.", suffix = "Storage";
    if (type.rfind(prefix, 0) != 0 || type.size() <= prefix.size() + suffix.size() ||
        type.compare(type.size() - suffix.size(), suffix.size(), suffix) != 0)
      bad("unsupported storage type " + shown(type));
    auto v = make(Value::Kind::Storage);
    v->storage.dtype = type.substr(prefix.size(), type.size() - prefix.size() - suffix.size());
    if (id->items[2]->s.size() > kMaxName) bad("a storage key is too long");
    v->storage.key = id->items[2]->s;
    v->storage.numel = id->items[4]->i;
    if (element_size(v->storage.dtype) == 0) bad("unsupported storage type " + shown(type));
    if (v->storage.numel < 0) bad("negative storage size");
    return v;
  }

  ValuePtr reduce(const ValuePtr callable, const ValuePtr args) {
    if (callable->kind != Value::Kind::Global || args->kind != Value::Kind::Tuple)
      bad("unsupported REDUCE");
    if (callable->s == "collections.OrderedDict") return make(Value::Kind::Dict);
    if (callable->s == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args->items);
    bad("unsupported object " + shown(callable->s));
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[,
  // metadata])
  ValuePtr rebuild_tensor(const std::vector<ValuePtr>& a) {
    if (a.size() < 4 || a[0]->kind != Value::Kind::Storage || a[1]->kind != Value::Kind::Int ||
        a[2]->kind != Value::Kind::Tuple || a[3]->kind != Value::Kind::Tuple ||
        a[2]->items.size() != a[3]->items.size())
      bad("malformed tensor");
    if (a[2]->items.size() > kMaxRank) bad("a tensor has more than 64 dimensions");
    const Storage& storage = a[0]->storage;
    auto v = make(Value::Kind::Tensor);
    v->tensor_dtype = storage.dtype;
    View view;
    view.offset = a[1]->i;
    measure(a[2]->items, a[3]->items, storage, &view, &v->tensor.shape);
    if (storage.dtype != "Float" && storage.dtype != "Double") return v;  // refused by the caller
    const std::vector<uint8_t>& bytes = storage_bytes(storage);
    // The elements the view touches, checked against the bytes actually read, not only against the
    // numel the pickle declares (a storage key may come back with another numel).
    const uint64_t element = static_cast<uint64_t>(element_size(storage.dtype));
    if (!view.empty && static_cast<uint64_t>(view.last) >= bytes.size() / element)
      bad("a tensor reaches past its storage's bytes");
    if (view.count > values_left_) bad("the tensors hold more values than the file could");
    values_left_ -= view.count;
    v->tensor.dtype = storage.dtype == "Float" ? "float32" : "float64";
    v->tensor.values.resize(static_cast<size_t>(view.count));
    copy_values(bytes, storage.dtype == "Float", view, v->tensor.shape, &v->tensor.values);
    return v;
  }

  // Where a tensor's elements lie in its storage.
  struct View {
    int64_t offset = 0;
    std::vector<int64_t> strides;
    uint64_t count = 1;  // elements (0 when empty)
    int64_t last = 0;    // the highest element the view touches (when not empty)
    bool empty = false;
  };

  // The shape and the view of sizes `sizes` and strides `strides` at view->offset, checked to lie
  // inside the storage's declared numel with overflow-safe arithmetic: (size - 1) * stride and
  // their sum can each overflow 64 bits for sizes a pickle can hold.
  void measure(const std::vector<ValuePtr>& sizes, const std::vector<ValuePtr>& strides,
               const Storage& storage, View* view, std::vector<int64_t>* shape) {
    if (view->offset < 0) bad("a tensor reaches past its storage");
    // An overflow only matters for a view that is not empty (a size of 0 anywhere); it is known
    // once every size has been seen.
    bool past = false, too_many = false;
    int64_t last = view->offset;
    for (size_t k = 0; k < sizes.size(); ++k) {
      const ValuePtr size = sizes[k], stride = strides[k];
      if (size->kind != Value::Kind::Int || stride->kind != Value::Kind::Int || size->i < 0 ||
          stride->i < 0)
        bad("malformed tensor shape");
      shape->push_back(size->i);
      view->strides.push_back(stride->i);
      if (size->i == 0) view->empty = true;
      int64_t reach = 0;
      if (size->i > 0 && (__builtin_mul_overflow(size->i - 1, stride->i, &reach) ||
                          __builtin_add_overflow(last, reach, &last)))
        past = true;
      if (!too_many &&
          __builtin_mul_overflow(view->count, static_cast<uint64_t>(size->i), &view->count))
        too_many = true;
    }
    if (view->empty) {
      view->count = 0;
      return;
    }
    if (past || last >= storage.numel) bad("a tensor reaches past its storage");
    // A view holds no more elements than its storage (so the file's size bounds the values).
    if (too_many || view->count > static_cast<uint64_t>(storage.numel))
      bad("a tensor holds more elements than its storage");
    view->last = last;
  }

  // The view's elements, row-major, as float32. Every element index lies in [offset, last], which
  // the caller checked against the storage's bytes.
  static void copy_values(const std::vector<uint8_t>& bytes, bool float32, const View& view,
                          const std::vector<int64_t>& shape, std::vector<float>* out) {
    if (view.count == 0) return;
    const int rank = static_cast<int>(shape.size());
    bool contiguous = true;
    int64_t expected = 1;  // bounded by count
    for (int k = rank - 1; k >= 0; --k) {
      if (shape[k] != 1 && view.strides[k] != expected) contiguous = false;
      expected *= shape[k];
    }
    if (contiguous && float32) {
      std::memcpy(out->data(), &bytes[static_cast<size_t>(view.offset) * 4], out->size() * 4);
      return;
    }
    std::vector<int64_t> index(rank, 0);
    for (uint64_t n = 0; n < view.count; ++n) {
      int64_t element = view.offset;
      for (int k = 0; k < rank; ++k) element += index[k] * view.strides[k];
      if (float32) {
        std::memcpy(&(*out)[n], &bytes[static_cast<size_t>(element) * 4], 4);
      } else {
        double d;
        std::memcpy(&d, &bytes[static_cast<size_t>(element) * 8], 8);
        (*out)[n] = static_cast<float>(d);  // float64 inputs become float32
      }
      for (int k = rank - 1; k >= 0; --k) {
        if (++index[k] < shape[k]) break;
        index[k] = 0;
      }
    }
  }

  // The record of `storage`, read once per key. Every use of a key is checked: a key the pickle
  // names again must have the same dtype and fit its numel in the record's bytes.
  const std::vector<uint8_t>& storage_bytes(const Storage& storage) {
    auto found = storages_.find(storage.key);
    if (found == storages_.end()) {
      std::vector<uint8_t> bytes = zip_.read(prefix_ + "data/" + storage.key);
      found = storages_.emplace(storage.key, std::make_pair(storage.dtype, std::move(bytes))).first;
    }
    if (found->second.first != storage.dtype)
      bad("storage '" + shown(storage.key) + "' is named with two dtypes");
    uint64_t expected = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(storage.numel),
                               static_cast<uint64_t>(element_size(storage.dtype)), &expected) ||
        found->second.second.size() < expected)
      bad("storage '" + shown(storage.key) + "' is shorter than its tensor says");
    return found->second.second;
  }

  std::string path_;
  const std::vector<uint8_t>& p_;
  const ZipArchive& zip_;
  std::string prefix_;
  uint64_t values_left_;
  size_t at_ = 0;
  std::vector<std::unique_ptr<Value>> arena_;  // every object, freed one by one, never recursively
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, ValuePtr> memo_;
  std::map<std::string, std::pair<std::string, std::vector<uint8_t>>>
      storages_;  // key: dtype, bytes
};

// Where the pickle and the storages sit: <archive>/data.pkl and <archive>/data/<key>.
std::string archive_prefix(const std::string& path, const ZipArchive& zip) {
  for (const auto& [name, entry] : zip.entries()) {
    const std::string tail = "data.pkl";
    if (name.size() >= tail.size() &&
        name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
        std::count(name.begin(), name.end(), '/') <= 1)
      return name.substr(0, name.size() - tail.size());
  }
  fail_unreadable(path, "the archive holds no data.pkl");
}

std::vector<HostTensor> read_tuple(const std::string& path, const ByteSource& source) {
  // The first bytes decide what kind of file it is, before anything else is read.
  const std::vector<uint8_t> magic = source.read(0, std::min<uint64_t>(source.size(), 4));
  if (magic.size() >= 2 && magic[0] == 0x80 && magic[1] <= 5)
    throw UserError(path +
                    ": a pre-1.6 torch.save file (legacy pickle format); re-save it with "
                    "PyTorch >= 1.6 (torch.save(torch.load(f), f)) to get the zip container");
  if (magic.size() < 4 || magic[0] != 'P' || magic[1] != 'K' || magic[2] != 3 || magic[3] != 4)
    throw UserError(path +
                    ": not a torch.save file (expected a zip container written by "
                    "torch.save with PyTorch >= 1.6)");
  const ZipArchive zip(path, source);
  const std::string prefix = archive_prefix(path, zip);
  if (zip.entries().count(prefix + "byteorder")) {
    const std::vector<uint8_t> order = zip.read(prefix + "byteorder");
    if (std::string(order.begin(), order.end()) != "little")
      fail_unreadable(path, "big-endian data is not supported");
  }
  const std::vector<uint8_t> pickle = zip.read(prefix + "data.pkl");
  const uint64_t budget = source.size() + kValueAllowance;
  Unpickler unpickler(path, pickle, zip, prefix, budget);
  const ValuePtr value = unpickler.run();
  if (value->kind != Value::Kind::Tuple)
    throw UserError(path + ": holds a " + kind_name(*value) +
                    ", expected a tuple of tensors as written by torch.save((a, b))");
  uint64_t total = 0;  // the same tensor may come back through the memo: each is a copy
  for (size_t i = 0; i < value->items.size(); ++i) {
    const Value& element = *value->items[i];
    if (element.kind != Value::Kind::Tensor)
      throw UserError(path + ": tuple element " + std::to_string(i) + " is a " +
                      kind_name(element) + ", expected a tensor");
    if (element.tensor_dtype != "Float" && element.tensor_dtype != "Double")
      throw UserError(path + ": tensor " + std::to_string(i) + " has dtype " +
                      shown(element.tensor_dtype) + ", expected float32 (or float64)");
    total += element.tensor.values.size();
    if (total > budget) fail_unreadable(path, "the tensors hold more values than the file could");
  }
  std::vector<HostTensor> tensors;
  for (const ValuePtr element : value->items) tensors.push_back(element->tensor);
  return tensors;
}

}  // namespace

std::vector<HostTensor> read_tensor_tuple(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0)
    throw UserError(path + ": file not found (expected a torch.save file)");
  const FileSource file(path);  // read piece by piece: only what the zip directory declares
  return read_tuple(path, file);
}

std::vector<HostTensor> read_tensor_tuple_from_memory(const std::string& name, const uint8_t* data,
                                                      size_t size) {
  const MemorySource memory(data, size);
  return read_tuple(name, memory);
}

}  // namespace khsgd
