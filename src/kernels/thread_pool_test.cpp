// The process-wide thread pool (util/thread_pool.h): coverage of the index
// space, reuse, sizes, nesting, concurrent callers and exceptions.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "util/thread_pool.h"

namespace pocket {
namespace {

// Every index of [0, n) is visited exactly once, in ranges that are whole
// grains (except the last).
void check_coverage(int64_t n, int64_t grain, bool chunked = false) {
  std::vector<std::atomic<int>> hits(size_t(n > 0 ? n : 0));
  for (auto& h : hits) h.store(0);
  std::atomic<int> bad_ranges{0};
  auto visit = [&](int64_t begin, int64_t end) {
    if (begin >= end || begin % grain != 0 || (end % grain != 0 && end != n)) bad_ranges++;
    for (int64_t i = begin; i < end; i++) hits[size_t(i)]++;
  };
  if (chunked)
    parallel_for_chunked(n, visit, grain, 4);
  else
    parallel_for(n, visit, grain);
  EXPECT_EQ(bad_ranges.load(), 0) << "n=" << n << " grain=" << grain;
  for (int64_t i = 0; i < n; i++) ASSERT_EQ(hits[size_t(i)].load(), 1) << "n=" << n << " i=" << i;
}

TEST(ThreadPool, EveryIndexExactlyOnceForManySizesAndGrains) {
  const int saved = thread_count();
  for (int threads : {1, 2, 3, 4, 7}) {
    set_thread_count(threads);
    ASSERT_EQ(thread_count(), threads);
    for (int64_t n : {0, 1, 2, 3, 5, 16, 17, 100, 1000, 4099})
      for (int64_t grain : {1, 4, 16, 1000}) {
        check_coverage(n, grain);
        check_coverage(n, grain, /*chunked=*/true);
      }
  }
  set_thread_count(saved);
}

TEST(ThreadPool, RunCallsEveryThreadOnceWithItsIndex) {
  ThreadPool pool(4);
  for (int repeat = 0; repeat < 500; repeat++) {
    std::atomic<int> mask{0}, total{0};
    pool.run([&](int t, int n) {
      EXPECT_EQ(n, 4);
      mask |= 1 << t;
      total++;
    });
    ASSERT_EQ(mask.load(), 0xF);
    ASSERT_EQ(total.load(), 4);
  }
}

TEST(ThreadPool, RepeatedUseSumsCorrectly) {
  std::vector<int64_t> data(10000);
  for (size_t i = 0; i < data.size(); i++) data[i] = int64_t(i);
  for (int repeat = 0; repeat < 500; repeat++) {
    std::atomic<int64_t> sum{0};
    parallel_for(int64_t(data.size()), [&](int64_t b, int64_t e) {
      int64_t s = 0;
      for (int64_t i = b; i < e; i++) s += data[size_t(i)];
      sum += s;
    });
    ASSERT_EQ(sum.load(), int64_t(data.size()) * int64_t(data.size() - 1) / 2);
  }
}

TEST(ThreadPool, OneThreadRunsInline) {
  ThreadPool pool(1);
  const auto caller = std::this_thread::get_id();
  int calls = 0;
  pool.run([&](int t, int n) {
    EXPECT_EQ(t, 0);
    EXPECT_EQ(n, 1);
    EXPECT_EQ(std::this_thread::get_id(), caller);
    calls++;
  });
  EXPECT_EQ(calls, 1);
}

TEST(ThreadPool, NestedParallelForRunsInline) {
  std::atomic<int64_t> inner_total{0};
  std::atomic<int> nested_splits{0};
  parallel_for(8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) {
      int pieces = 0;
      parallel_for(100, [&](int64_t ib, int64_t ie) {
        pieces++;
        inner_total += ie - ib;
      });
      if (pieces != 1) nested_splits++;
    }
  });
  EXPECT_EQ(inner_total.load(), 800);
  EXPECT_EQ(nested_splits.load(), 0);
}

TEST(ThreadPool, ConcurrentCallersBothFinish) {
  std::atomic<int64_t> a{0}, b{0};
  auto work = [](std::atomic<int64_t>& counter) {
    for (int k = 0; k < 300; k++)
      parallel_for(1000, [&](int64_t begin, int64_t end) { counter += end - begin; });
  };
  std::thread t1(work, std::ref(a)), t2(work, std::ref(b));
  t1.join();
  t2.join();
  EXPECT_EQ(a.load(), 300000);
  EXPECT_EQ(b.load(), 300000);
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  ThreadPool pool(3);
  EXPECT_THROW(pool.run([](int t, int) {
    if (t == 2) throw std::runtime_error("worker");
  }),
               std::runtime_error);
  EXPECT_THROW(pool.run([](int t, int) {
    if (t == 0) throw std::runtime_error("caller");
  }),
               std::runtime_error);
  // Still usable afterwards.
  std::atomic<int> n{0};
  pool.run([&](int, int) { n++; });
  EXPECT_EQ(n.load(), 3);
}

TEST(ThreadPool, SleepingWorkersWakeUp) {
  ThreadPool pool(3);
  for (int repeat = 0; repeat < 5; repeat++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // past the spin time
    std::atomic<int> n{0};
    pool.run([&](int, int) { n++; });
    ASSERT_EQ(n.load(), 3);
  }
}

TEST(ThreadPool, PhysicalCoresIsPositive) {
  EXPECT_GE(physical_core_count(), 1);
}

}  // namespace
}  // namespace pocket
