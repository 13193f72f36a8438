#include "khsgd/sorting/state_io.hpp"

#include <cstring>
#include <utility>

#include "khsgd/base/errors.hpp"

namespace khsgd {

void StateWriter::raw(const void* p, size_t n) {
  const auto* bytes = static_cast<const uint8_t*>(p);
  data_.insert(data_.end(), bytes, bytes + n);
}
void StateWriter::i64(int64_t value) { raw(&value, sizeof value); }
void StateWriter::bytes(const std::vector<uint8_t>& values) {
  i64(static_cast<int64_t>(values.size()));
  raw(values.data(), values.size());
}
void StateWriter::floats(const std::vector<float>& values) {
  i64(static_cast<int64_t>(values.size()));
  raw(values.data(), values.size() * sizeof(float));
}
void StateWriter::indices(const std::vector<int64_t>& values) {
  i64(static_cast<int64_t>(values.size()));
  std::vector<int32_t> narrow(values.begin(), values.end());
  raw(narrow.data(), narrow.size() * sizeof(int32_t));
}

StateReader::StateReader(const std::vector<uint8_t>& data, std::string source, std::string remedy)
    : data_(data), source_(std::move(source)), remedy_(std::move(remedy)) {}

void StateReader::corrupt(const std::string& why) const {
  throw UserError(source_ + ": corrupt checkpoint (" + why + "); " + remedy_);
}

void StateReader::raw(void* p, size_t n) {
  if (n > data_.size() - at_) corrupt("it ends early");
  if (n == 0)
    return;  // an empty field (a CPU run's CUDA generator): p may be null, and memcpy
             // from or to null is undefined even for 0 bytes (UBSan found it)
  std::memcpy(p, data_.data() + at_, n);
  at_ += n;
}

size_t StateReader::length(size_t element_size) {
  const int64_t count = i64();
  if (count < 0 || static_cast<uint64_t>(count) > (data_.size() - at_) / element_size)
    corrupt("a length field is out of range");
  return static_cast<size_t>(count);
}

int64_t StateReader::i64() {
  int64_t value;
  raw(&value, sizeof value);
  return value;
}
std::vector<uint8_t> StateReader::bytes() {
  std::vector<uint8_t> values(length(1));
  raw(values.data(), values.size());
  return values;
}
std::vector<float> StateReader::floats() {
  std::vector<float> values(length(sizeof(float)));
  raw(values.data(), values.size() * sizeof(float));
  return values;
}
std::vector<int64_t> StateReader::indices() {
  std::vector<int32_t> narrow(length(sizeof(int32_t)));
  raw(narrow.data(), narrow.size() * sizeof(int32_t));
  return std::vector<int64_t>(narrow.begin(), narrow.end());
}
void StateReader::expect_permutations(const std::vector<int64_t>& orders, int64_t rows,
                                      const char* what) const {
  if (rows <= 0 || orders.size() % static_cast<size_t>(rows) != 0)
    corrupt(std::string(what) + " is not whole orders of " + std::to_string(rows) + " rows");
  std::vector<bool> seen(static_cast<size_t>(rows));
  for (size_t start = 0; start < orders.size(); start += static_cast<size_t>(rows)) {
    std::fill(seen.begin(), seen.end(), false);
    for (size_t i = start; i < start + static_cast<size_t>(rows); ++i) {
      const int64_t row = orders[i];
      if (row < 0 || row >= rows || seen[static_cast<size_t>(row)])
        corrupt(std::string(what) + " names a row out of range or twice");
      seen[static_cast<size_t>(row)] = true;
    }
  }
}

void StateReader::expect_size(size_t got, size_t expected, const char* what) const {
  if (got != expected)
    corrupt(std::string(what) + " holds " + std::to_string(got) + " values, this run needs " +
            std::to_string(expected));
}

}  // namespace khsgd
