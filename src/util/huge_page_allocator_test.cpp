// HugePageAllocator (the recurrent state's allocator).
#include "util/huge_page_allocator.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

// The recurrent state's allocator: blocks of 2 MiB and more start on a 2 MiB
// boundary (so the advised huge pages can back them), smaller ones are plain
// heap memory, and a vector on it keeps its values through growth.
TEST(HugePageAllocator, AlignsLargeBlocksAndKeepsContents) {
  pocket::HugePageAllocator<float> a;
  const std::size_t big = pocket::kHugePageBytes / sizeof(float) + 3;  // a partial last huge page
  float* p = a.allocate(big);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % pocket::kHugePageBytes, 0u);
  p[0] = 1.0f;
  p[big - 1] = 2.0f;  // the whole rounded block is usable
  a.deallocate(p, big);
  float* s = a.allocate(5);
  ASSERT_NE(s, nullptr);
  a.deallocate(s, 5);
  std::vector<float, pocket::HugePageAllocator<float>> v(1000, 0.5f);
  v.resize(big, 0.25f);
  EXPECT_EQ(v[999], 0.5f);
  EXPECT_EQ(v[big - 1], 0.25f);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(v.data()) % pocket::kHugePageBytes, 0u);
}
