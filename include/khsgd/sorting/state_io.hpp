// Typed values in a byte buffer: the sorters' and the trainer's checkpoint state (checkpoint.hpp
// frames and checks the file around it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace khsgd {

// Appends typed values to a byte buffer.
class StateWriter {
 public:
  void i64(int64_t value);
  void bytes(const std::vector<uint8_t>& values);
  void floats(const std::vector<float>& values);
  // int64 indices known to fit in 32 bits, stored in 4 bytes each (order matrices)
  void indices(const std::vector<int64_t>& values);
  const std::vector<uint8_t>& data() const { return data_; }

 private:
  void raw(const void* p, size_t n);
  std::vector<uint8_t> data_;
};

// Reads them back in the same order; a read past the end or a length that does not fit is a
// corrupt checkpoint (UserError naming `source`).
class StateReader {
 public:
  // `remedy` ends corrupt()'s message (the Python module's differs from khsgd_train's).
  StateReader(const std::vector<uint8_t>& data, std::string source,
              std::string remedy = "remove it and use --overwrite to start the run over");
  int64_t i64();
  std::vector<uint8_t> bytes();
  std::vector<float> floats();
  std::vector<int64_t> indices();
  // `what` must hold exactly `expected` elements (e.g. the order matrix of this run's shape).
  void expect_size(size_t got, size_t expected, const char* what) const;
  // Orders index the training rows, so one read from a crafted checkpoint (its checksum catches
  // damage, not a forgery) must be a permutation of 0 .. rows-1 in each block of `rows` values:
  // out of range, it would read outside the data. corrupt() naming `what` otherwise.
  void expect_permutations(const std::vector<int64_t>& orders, int64_t rows,
                           const char* what) const;
  bool at_end() const { return at_ == data_.size(); }
  [[noreturn]] void corrupt(const std::string& why) const;

 private:
  void raw(void* p, size_t n);
  size_t length(size_t element_size);
  const std::vector<uint8_t>& data_;
  std::string source_;
  std::string remedy_;
  size_t at_ = 0;
};

}  // namespace khsgd
