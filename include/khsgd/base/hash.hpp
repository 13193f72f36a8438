// A 64-bit FNV-1a over 8-byte words (then the tail bytes): the checksum of checkpoints and the
// fingerprint of a run's flags and data. Catches damage and differences, not adversaries.
#pragma once

#include <cstdint>
#include <cstring>

namespace khsgd {

inline constexpr uint64_t kFnvOffset = 1469598103934665603ull;

inline uint64_t fnv1a64(const void* data, size_t size, uint64_t hash = kFnvOffset) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  const size_t words = size / 8;
  for (size_t i = 0; i < words; ++i) {
    uint64_t word;
    std::memcpy(&word, bytes + 8 * i, 8);
    hash = (hash ^ word) * 1099511628211ull;
  }
  for (size_t i = 8 * words; i < size; ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  return hash;
}

}  // namespace khsgd
