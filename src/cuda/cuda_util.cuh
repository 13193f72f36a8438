// CUDA runtime helpers for the CUDA engine and sorters: error checks that throw, and an owning
// device buffer. Plain cudaMalloc: the data is allocated once per run.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace khsgd::cuda {

inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}

#define KHSGD_CUDA_CHECK(call) ::khsgd::cuda::check((call), #call)

// Checks that the last kernel launch was accepted (bad configuration shows up here, faults at the
// next synchronisation).
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Bytes held in DeviceBuffers now and at most so far (the benchmark's peak device memory).
inline std::atomic<size_t>& device_bytes_now() {
  static std::atomic<size_t> bytes{0};
  return bytes;
}
inline std::atomic<size_t>& device_bytes_peak() {
  static std::atomic<size_t> bytes{0};
  return bytes;
}

#ifdef __CUDACC__
// Sum over the warp; every lane gets the same total (each butterfly level adds the same two
// partial sums on both partners, and addition commutes).
__device__ inline double warp_sum(double value) {
  for (int offset = 16; offset > 0; offset >>= 1)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}
#endif

template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept { swap(other); }
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    swap(other);
    return *this;
  }

  void resize(size_t count) {
    release();
    if (count == 0) return;
    void* raw = nullptr;
    check(cudaMalloc(&raw, count * sizeof(T)),
          ("cudaMalloc of " + std::to_string(count * sizeof(T)) + " bytes").c_str());
    data_ = static_cast<T*>(raw);
    count_ = count;
    const size_t now = device_bytes_now() += count * sizeof(T);
    size_t peak = device_bytes_peak().load();
    while (now > peak && !device_bytes_peak().compare_exchange_weak(peak, now)) {}
  }
  void upload(const T* host, size_t count, size_t offset = 0) {
    check(cudaMemcpy(data_ + offset, host, count * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  template <class Allocator>
  void upload(const std::vector<T, Allocator>& host) {
    if (host.size() != count_) resize(host.size());
    upload(host.data(), host.size());
  }
  std::vector<T> download(size_t count, size_t offset = 0) const {
    std::vector<T> host(count);
    check(cudaMemcpy(host.data(), data_ + offset, count * sizeof(T), cudaMemcpyDeviceToHost),
          "download");
    return host;
  }
  void zero() {
    if (count_) check(cudaMemset(data_, 0, count_ * sizeof(T)), "cudaMemset");
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return count_; }
  void swap(DeviceBuffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
  }

 private:
  void release() {
    if (data_) {
      cudaFree(data_);
      device_bytes_now() -= count_ * sizeof(T);
    }
    data_ = nullptr;
    count_ = 0;
  }
  T* data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace khsgd::cuda
