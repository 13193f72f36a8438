// Where the readers of untrusted files (zip_archive.cpp, pt_reader.cpp, checkpoint.cpp) take their
// bytes from: a file read piece by piece at the offsets its structure declares (pread), or a buffer
// (the fuzz targets in tests/fuzz/). A reader checks what a file declares against its size before
// it reads, so a huge file is refused without being read whole.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace khsgd {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // True when [at, at + n) lies inside the source (overflow-safe). Readers check it first, to
  // say in their own words what in the file points outside it.
  bool holds(uint64_t at, uint64_t n) const { return at <= size() && n <= size() - at; }
  // The `n` bytes at `at`, which must lie inside the source (checked with holds(); outside it,
  // std::out_of_range: a reader that forgot to check, a bug, not a bad file).
  std::vector<uint8_t> read(uint64_t at, uint64_t n) const;

 protected:
  // Copies [at, at + n), known to lie inside size(), into `out`.
  virtual void copy(uint64_t at, uint8_t* out, size_t n) const = 0;
};

// A regular file, opened for reading; its size as it was when opened.
class FileSource : public ByteSource {
 public:
  // Throws UserError "PATH: not a regular file" or "PATH: cannot be opened for reading (WHY)".
  explicit FileSource(std::string path);
  // A descriptor opened already (open_regular_for_read: no links, no FIFOs), owned from here on.
  FileSource(std::string path, int fd);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;
  uint64_t size() const override { return size_; }

 private:
  void copy(uint64_t at, uint8_t* out, size_t n) const override;
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// A buffer the caller keeps alive.
class MemorySource : public ByteSource {
 public:
  MemorySource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t size() const override { return size_; }

 private:
  void copy(uint64_t at, uint8_t* out, size_t n) const override;
  const uint8_t* data_;
  size_t size_;
};

}  // namespace khsgd
