// Memory on 2 MiB pages for the arrays the step loop reads in a random order (the training rows).
//
// A shuffled epoch reads its 16 rows a step from anywhere in the set: 195 285 rows of 80 bytes are
// 15.6 MB, ~3 800 pages of 4 KiB, more than the TLB holds, so nearly every row's address is
// translated by a page walk (and in a virtual machine a walk of two page tables). On 2 MiB pages
// the whole set is eight translations. Measured on the development machine (an AMD EPYC guest,
// 2026-12-02; README, Speed): a plain C gather of the rows in a random order 4.2 -> 3.4-3.6 ms an
// epoch, D-RR's epoch 5.9-6.1 -> 4.9-5.2 ms (four alternating runs of the two builds).
//
// The kernel gives such pages to memory that asks for them (madvise MADV_HUGEPAGE, which the
// transparent-huge-page setting "madvise", Debian's default, requires) at the first touch of each
// 2 MiB-aligned stretch. Where it gives none (the setting "never", a kernel without them, no 2 MiB
// page free), the memory is ordinary pages: the same bytes, only slower to translate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace khsgd {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// The std::allocator for T, except that a request of kHugePageBytes or more is a mapping of its
// own, 2 MiB-aligned, with huge pages asked for. Stateless: any two compare equal.
template <class T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() = default;
  // Implicit, as std::allocator's: a container converts its allocator to another element type.
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)

  T* allocate(size_t n) {
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = n * sizeof(T);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= kHugePageBytes) return static_cast<T*>(map_aligned(bytes));
#endif
    return std::allocator<T>().allocate(n);
  }

  void deallocate(T* p, size_t n) noexcept {
    const size_t bytes = n * sizeof(T);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= kHugePageBytes) {
      munmap(p, round_up(bytes));
      return;
    }
#endif
    std::allocator<T>().deallocate(p, n);
  }

  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
  template <class U>
  bool operator!=(const HugePageAllocator<U>&) const noexcept {
    return false;
  }

 private:
  static size_t round_up(size_t bytes) {
    return (bytes + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
  }

#if defined(__linux__) && defined(MADV_HUGEPAGE)
  // A mapping of round_up(bytes) starting on a 2 MiB boundary: mapped 2 MiB longer, then the
  // stretches before the boundary and after the end given back.
  static void* map_aligned(size_t bytes) {
    if (bytes > SIZE_MAX - 2 * kHugePageBytes) throw std::bad_alloc();  // round_up's sum fits
    const size_t length = round_up(bytes);
    const size_t reserved = length + kHugePageBytes;
    void* mapped =
        mmap(nullptr, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED) throw std::bad_alloc();
    char* at = static_cast<char*>(mapped);
    const size_t skip =
        (kHugePageBytes - reinterpret_cast<uintptr_t>(at) % kHugePageBytes) % kHugePageBytes;
    char* aligned = at + skip;
    if (skip > 0) munmap(at, skip);
    if (reserved - skip > length) munmap(aligned + length, reserved - skip - length);
    // Advice only: without huge pages (EINVAL) the mapping is as good as malloc's.
    madvise(aligned, length, MADV_HUGEPAGE);
    return aligned;
  }
#endif
};

// A vector whose elements lie on huge pages once it holds 2 MiB or more.
template <class T>
using HugePageVector = std::vector<T, HugePageAllocator<T>>;

}  // namespace khsgd
