// An allocator for large, long-lived buffers that are streamed every step
// (the DeltaNet recurrent state: 1 MiB per layer of the 0.8b model, read and
// written once per decoded token). Blocks of at least 2 MiB are 2 MiB aligned
// and advised MADV_HUGEPAGE before they are touched, so that with transparent
// huge pages in `madvise` or `always` mode they sit on 2 MiB pages: a cold
// pass over the state then takes a few TLB misses instead of one per 4 KiB
// (the weights' streaming evicts the TLB between tokens). Smaller blocks, and
// systems without huge pages, get ordinary memory; the contents are the same.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pocket {

inline constexpr std::size_t kHugePageBytes = std::size_t(2) << 20;

// Whether allocate() advises huge pages (default true; A/B measurements turn
// it off, for allocations made afterwards).
inline bool g_huge_page_advice = true;

template <typename T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT: rebinding

  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHugePageBytes) return static_cast<T*>(::operator new(bytes));
    const std::size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    void* p = std::aligned_alloc(kHugePageBytes, rounded);
    if (!p) throw std::bad_alloc();
#if defined(__linux__)
    if (g_huge_page_advice)
      ::madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure leaves 4 KiB pages
#endif
    return static_cast<T*>(p);
  }

  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < kHugePageBytes)
      ::operator delete(p);
    else
      std::free(p);
  }

  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const noexcept {
    return true;
  }
};

}  // namespace pocket
