#include "khsgd/data/pt_stream.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "khsgd/base/errors.hpp"
#include "khsgd/data/files.hpp"
#include "khsgd/data/zip_archive.hpp"

namespace khsgd {

namespace {

// --- The tree -------------------------------------------------------------------------------

class TreeBuilder final : public SavedEmitter {
 public:
  void begin_dict() override { open(SavedObject::dict()); }
  void key(const std::string& key) override { key_ = key; }
  void end_dict() override { close(); }
  void begin_list() override { open(SavedObject::list()); }
  void end_list() override { close(); }
  void real(double value) override { add(SavedObject::real(value)); }
  void tensor(const std::vector<int64_t>& shape, const float* values, size_t count) override {
    add(SavedObject::float32_tensor(shape, std::vector<float>(values, values + count)));
  }
  SavedObject result() { return std::move(root_); }

 private:
  void add(SavedObject value) {
    SavedObject& parent = *open_.back();
    if (parent.kind == SavedObject::Kind::Dict)
      parent.set(key_, std::move(value));
    else
      parent.append(std::move(value));
  }
  void open(SavedObject value) {
    if (open_.empty()) {
      root_ = std::move(value);
      open_.push_back(&root_);
      return;
    }
    add(std::move(value));
    open_.push_back(&open_.back()->items.back());
  }
  void close() { open_.pop_back(); }

  SavedObject root_;
  std::vector<SavedObject*> open_;
  std::string key_;
};

// --- The zip container, as PyTorchStreamWriter (miniz) writes it -------------------------------

// `value` as `width` little-endian bytes (zeros past its eight).
void put_le(std::string* out, uint64_t value, int width) {
  for (int i = 0; i < width; ++i)
    out->push_back(static_cast<char>(i < 8 ? (value >> (8 * i)) & 0xFF : 0));
}

// Records written one after the other to a file through a bounded buffer: a local header (sizes
// left 0, general purpose flag 0x0808: a data descriptor follows, names are UTF-8), the data
// aligned to 64 bytes by an "FB" extra field, the descriptor; then the central directory.
class ZipStream {
 public:
  explicit ZipStream(AppendFile* file) : file_(file) {}

  // Starts the record "archive/NAME" (NAME "data/<index>" when `storage` >= 0).
  void begin(int64_t storage, const char* name = nullptr) {
    Entry entry;
    entry.offset = offset_;
    entry.name = storage >= 0 ? -1 : static_cast<int32_t>(named_.size());
    if (storage < 0) named_.emplace_back(name);
    entries_.push_back(entry);
    const std::string full = name_of(entries_.size() - 1);
    // PyTorchStreamWriter's getPadding(): the data starts at a multiple of 64.
    const uint64_t start = offset_ + 30 + full.size() + 4;
    const uint64_t padding = (64 - start % 64) % 64;
    std::string header = "PK\x03\x04";
    put_le(&header, 0, 2);                      // version needed
    put_le(&header, 0x0808, 2);                 // data descriptor, UTF-8
    put_le(&header, 0, 2 + 2 + 2 + 4 + 4 + 4);  // stored, time, date, crc and sizes (later)
    put_le(&header, full.size(), 2);
    put_le(&header, padding + 4, 2);
    header += full + "FB";
    put_le(&header, padding, 2);
    header.append(padding, 'Z');
    emit(header.data(), header.size());
    crc_ = 0;
    size_ = 0;
  }
  void write(const char* bytes, size_t size) {
    crc_ = crc32_update(crc_, reinterpret_cast<const uint8_t*>(bytes), size);
    size_ += size;
    emit(bytes, size);
  }
  void end() {
    if (size_ >= 0xFFFFFFFFu) throw std::length_error("torch.save record over 4 GiB");
    entries_.back().crc = crc_;
    entries_.back().size = static_cast<uint32_t>(size_);
    std::string descriptor = "PK\x07\x08";
    put_le(&descriptor, crc_, 4);
    put_le(&descriptor, size_, 4);
    put_le(&descriptor, size_, 4);
    emit(descriptor.data(), descriptor.size());
  }
  void finish();

 private:
  struct Entry {
    uint64_t offset = 0;
    uint32_t crc = 0, size = 0;
    int32_t name = -1;  // index into named_, -1: "data/<its index>"
  };
  std::string name_of(size_t index) const {
    const Entry& e = entries_[index];
    return "archive/" + (e.name < 0 ? "data/" + std::to_string(index) : named_[e.name]);
  }
  void emit(const char* bytes, size_t size) {
    buffer_.append(bytes, size);
    offset_ += size;
    if (buffer_.size() >= kBuffer) flush();
  }
  void flush() {
    if (!buffer_.empty()) file_->append(buffer_);
    buffer_.clear();
  }
  void end_records(uint64_t directory_offset, uint64_t directory_size);

  static constexpr size_t kBuffer = 1 << 18;
  AppendFile* file_;
  std::string buffer_;
  uint64_t offset_ = 0;
  uint32_t crc_ = 0;
  uint64_t size_ = 0;
  std::vector<Entry> entries_;
  std::vector<std::string> named_;
};

void ZipStream::finish() {
  const uint64_t directory_offset = offset_;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Entry& e = entries_[i];
    const std::string name = name_of(i);
    if (e.offset >= 0xFFFFFFFFu) throw std::length_error("torch.save file over 4 GiB");
    std::string header = "PK\x01\x02";
    put_le(&header, 0, 2 + 2);      // versions made by and needed
    put_le(&header, 0x0808, 2);     // as in the local header
    put_le(&header, 0, 2 + 2 + 2);  // stored, time, date
    put_le(&header, e.crc, 4);
    put_le(&header, e.size, 4);
    put_le(&header, e.size, 4);
    put_le(&header, name.size(), 2);
    put_le(&header, 0, 2 + 2 + 2 + 2 + 4);  // extra, comment, disk, attributes
    put_le(&header, e.offset, 4);
    header += name;
    emit(header.data(), header.size());
  }
  end_records(directory_offset, offset_ - directory_offset);
  flush();
}

// The end of the archive as PyTorch's miniz writes it: a zip64 end record and its locator (always,
// whatever the size), then the classic end record (its counts capped at 0xFFFF).
void ZipStream::end_records(uint64_t directory_offset, uint64_t directory_size) {
  const uint64_t count = entries_.size();
  const uint64_t zip64_offset = offset_;
  std::string end = "PK\x06\x06";
  put_le(&end, 44, 8);      // the record's size after this field
  put_le(&end, 0x031E, 2);  // made by: Unix, 3.0
  put_le(&end, 45, 2);      // needed: 4.5 (zip64)
  put_le(&end, 0, 4 + 4);
  put_le(&end, count, 8);
  put_le(&end, count, 8);
  put_le(&end, directory_size, 8);
  put_le(&end, directory_offset, 8);
  end += "PK\x06\x07";
  put_le(&end, 0, 4);
  put_le(&end, zip64_offset, 8);
  put_le(&end, 1, 4);
  end += "PK\x05\x06";
  put_le(&end, 0, 2 + 2);
  put_le(&end, std::min<uint64_t>(count, 0xFFFF), 2);
  put_le(&end, std::min<uint64_t>(count, 0xFFFF), 2);
  put_le(&end, std::min<uint64_t>(directory_size, 0xFFFFFFFFu), 4);
  put_le(&end, std::min<uint64_t>(directory_offset, 0xFFFFFFFFu), 4);
  put_le(&end, 0, 2);
  emit(end.data(), end.size());
}

// --- Pass 1: the storages ---------------------------------------------------------------------

// Tensors in emission order, each its own storage record "data/<n>" (float32, little-endian).
class StorageRecords final : public SavedEmitter {
 public:
  explicit StorageRecords(ZipStream* zip) : zip_(zip) {}
  void begin_dict() override {}
  void key(const std::string&) override {}
  void end_dict() override {}
  void begin_list() override {}
  void end_list() override {}
  void real(double) override {}
  void tensor(const std::vector<int64_t>&, const float* values, size_t count) override {
    static_assert(sizeof(float) == 4, "float32");
    zip_->begin(tensors_++);
    zip_->write(reinterpret_cast<const char*>(values), count * sizeof(float));
    zip_->end();
  }

 private:
  ZipStream* zip_;
  int64_t tensors_ = 0;
};

// --- Pass 2: the pickle -----------------------------------------------------------------------

// The opcodes LibTorch's Pickler (torch/csrc/jit/serialization/pickler.cpp) writes for dicts and
// lists of strings, floats and tensors, with its memo: every new string and global gets the next
// memo number (BINPUT), a repeated one is fetched (BINGET); dicts, lists and tensors held once
// are not memoized; each tensor's storage is a persistent id ('storage', torch.FloatStorage,
// '<n>', 'cpu', numel).
class PickleRecord final : public SavedEmitter {
 public:
  explicit PickleRecord(ZipStream* zip) : zip_(zip) { op(0x80, 1, 2); }  // PROTO 2
  void finish() { op('.'); }                                             // STOP
  void begin_dict() override {
    op('}');  // EMPTY_DICT
    op('(');  // MARK
  }
  void key(const std::string& key) override { string(key); }
  void end_dict() override { op('u'); }  // SETITEMS
  void begin_list() override {
    op(']');  // EMPTY_LIST
    op('(');
  }
  void end_list() override { op('e'); }  // APPENDS
  void real(double value) override {
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    char big_endian[9] = {'G'};  // BINFLOAT
    for (int i = 0; i < 8; ++i) big_endian[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
    zip_->write(big_endian, sizeof big_endian);
  }
  void tensor(const std::vector<int64_t>& shape, const float*, size_t count) override;

 private:
  void op(char code) { zip_->write(&code, 1); }
  // An opcode and a little-endian argument of `width` bytes.
  void op(unsigned char code, int width, uint64_t argument) {
    std::string bytes(1, static_cast<char>(code));
    put_le(&bytes, argument, width);
    zip_->write(bytes.data(), bytes.size());
  }
  void integer(int64_t n) {
    if (n >= 0 && n <= 0xFF) return op('K', 1, static_cast<uint64_t>(n));               // BININT1
    if (n >= 0 && n <= 0xFFFF) return op('M', 2, static_cast<uint64_t>(n));             // BININT2
    if (n >= INT32_MIN && n <= INT32_MAX) return op('J', 4, static_cast<uint32_t>(n));  // BININT
    op(0x8A, 1, 8);  // LONG1, 8 bytes
    std::string bytes;
    put_le(&bytes, static_cast<uint64_t>(n), 8);
    zip_->write(bytes.data(), bytes.size());
  }
  void put_memo() {
    if (memo_ <= 0xFF)
      op('q', 1, memo_);  // BINPUT
    else
      op('r', 4, memo_);  // LONG_BINPUT
    ++memo_;
  }
  void get_memo(uint32_t id) {
    if (id <= 0xFF)
      op('h', 1, id);  // BINGET
    else
      op('j', 4, id);  // LONG_BINGET
  }
  void string(const std::string& text);
  void global(const char* key, uint32_t* memo) {  // key: "module\nname\n"
    if (*memo != kNone) return get_memo(*memo);
    op('c');  // GLOBAL
    zip_->write(key, std::strlen(key));
    *memo = memo_;
    put_memo();
  }

  static constexpr uint32_t kNone = UINT32_MAX;
  ZipStream* zip_;
  uint32_t memo_ = 0;  // the next memo number
  // Strings' memo numbers. The storages' keys "0", "1", ... (one per tensor, in order) are kept
  // in a vector (4 bytes each), the other strings in the map.
  std::vector<uint32_t> numbered_strings_;
  std::unordered_map<std::string, uint32_t> strings_;
  uint32_t rebuild_tensor_ = kNone, float_storage_ = kNone, ordered_dict_ = kNone;
  int64_t tensors_ = 0;
};

void PickleRecord::string(const std::string& text) {
  const bool numeral = !text.empty() && text.size() < 10 && (text == "0" || text[0] != '0') &&
                       text.find_first_not_of("0123456789") == std::string::npos;
  const size_t number = numeral ? std::stoul(text) : 0;
  if (numeral && number < numbered_strings_.size()) return get_memo(numbered_strings_[number]);
  const auto found = strings_.find(text);
  if (found != strings_.end()) return get_memo(found->second);
  op('X', 4, text.size());  // BINUNICODE
  zip_->write(text.data(), text.size());
  if (numeral && number == numbered_strings_.size())
    numbered_strings_.push_back(memo_);
  else
    strings_.emplace(text, memo_);
  put_memo();
}

// torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict()).
void PickleRecord::tensor(const std::vector<int64_t>& shape, const float*, size_t count) {
  global("torch._utils\n_rebuild_tensor_v2\n", &rebuild_tensor_);
  op('(');
  op('(');
  string("storage");
  global("torch\nFloatStorage\n", &float_storage_);
  string(std::to_string(tensors_++));
  string("cpu");
  integer(static_cast<int64_t>(count));
  op('t');  // TUPLE
  op('Q');  // BINPERSID
  put_memo();
  integer(0);  // storage offset
  op('(');
  for (const int64_t size : shape) integer(size);
  op('t');
  op('(');
  int64_t stride = 1;
  std::vector<int64_t> strides(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  for (const int64_t s : strides) integer(s);
  op('t');
  op(static_cast<char>(0x89));  // NEWFALSE: requires_grad
  global("collections\nOrderedDict\n", &ordered_dict_);
  op(')');  // EMPTY_TUPLE
  op('R');  // REDUCE: the backward hooks
  op('t');
  op('R');
}

}  // namespace

SavedObject saved_object_of(const SavedSource& source) {
  TreeBuilder tree;
  source(tree);
  return tree.result();
}

void write_saved_stream(const std::string& path, const SavedSource& source) {
  // The temporary is made through write_file_atomically (files.hpp opens every file khsgd
  // writes), then filled record by record.
  const std::string partial = path + ".partial";
  write_file_atomically(partial, "");
  try {
    AppendFile file(partial);
    ZipStream zip(&file);
    StorageRecords storages(&zip);
    source(storages);
    zip.begin(-1, "data.pkl");
    PickleRecord pickle(&zip);
    source(pickle);
    pickle.finish();
    zip.end();
    zip.begin(-1, "version");
    zip.write("3\n", 2);
    zip.end();
    zip.finish();
  } catch (...) {
    ::unlink(partial.c_str());
    throw;
  }
  if (std::rename(partial.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(partial.c_str());
    throw IoError("cannot rename '" + partial + "' to '" + path + "': " + std::strerror(error));
  }
}

}  // namespace khsgd
