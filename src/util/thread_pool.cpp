#include "util/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <set>
#include <string>
#include <utility>

#if defined(__linux__)
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace pocket {

namespace {

thread_local bool t_in_task = false;

// How long an idle thread waits awake before it sleeps on a futex. A decode
// step runs dozens of matrix products separated by short serial kernels:
// staying awake across those gaps avoids a wake-up (tens of microseconds) per
// product. POCKET_SPIN_US overrides the worker's budget (the caller waits twice
// as long); 0 sleeps at once, which can help on a machine shared with other
// busy processes.
std::chrono::microseconds worker_spin() {
  static const std::chrono::microseconds spin = [] {
    const char* env = std::getenv("POCKET_SPIN_US");
    return std::chrono::microseconds(env ? std::max(0, std::atoi(env)) : 1000);
  }();
  return spin;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waits for done() without sleeping, up to a time budget; true if done() came
// true. The first microseconds spin on `pause`; after that the thread yields
// between checks: on an idle core yield returns at once (still a fast wake-up),
// on a busy one (more runnable threads than cores) the thread we are waiting
// for gets the core instead of our spinning.
template <typename Done>
bool spin_until(Done done, std::chrono::microseconds budget) {
  constexpr auto kPureSpin = std::chrono::microseconds(5);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 16; i++) {
      if (done()) return true;
      cpu_relax();
    }
    const auto waited = std::chrono::steady_clock::now() - start;
    if (waited > budget) return done();
    if (waited > kPureSpin) std::this_thread::yield();
  }
}

#if defined(__linux__)
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}
void futex_wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
}
#else
// Portable fallback: C++20 atomic wait (the fast path above matters on Linux).
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  word->wait(expected);
}
void futex_wake_all(std::atomic<uint32_t>* word) {
  word->notify_all();
}
#endif

// A worker's exception, handed to the thread that called run().
std::mutex g_error_mutex;
std::exception_ptr g_error;

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(size_t(n_threads_ - 1));
  for (int i = 1; i < n_threads_; i++) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(busy_);
    stopping_ = true;
    generation_.fetch_add(1, std::memory_order_seq_cst);
    futex_wake_all(&generation_);
  }
  for (std::thread& t : workers_) t.join();
}

bool ThreadPool::in_task() {
  return t_in_task;
}

void ThreadPool::run(FunctionRef<void(int, int)> task) {
  if (n_threads_ == 1 || t_in_task) {
    task(0, 1);
    return;
  }
  std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
  if (!lock.owns_lock()) {  // another thread is using the pool: do it alone
    task(0, 1);
    return;
  }
  task_ = &task;
  pending_.store(uint32_t(n_threads_ - 1), std::memory_order_relaxed);
  // seq_cst pairs with the workers' sleeping_workers_ increment (Dekker):
  // either we see a sleeper and wake it, or it sees the new generation.
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (sleeping_workers_.load(std::memory_order_seq_cst) > 0) futex_wake_all(&generation_);

  std::exception_ptr caller_error;
  t_in_task = true;
  try {
    task(0, n_threads_);
  } catch (...) {
    caller_error = std::current_exception();
  }
  t_in_task = false;
  wait_for_workers();
  task_ = nullptr;
  if (caller_error) std::rethrow_exception(caller_error);
  std::exception_ptr worker_error;
  {
    std::lock_guard<std::mutex> guard(g_error_mutex);
    std::swap(worker_error, g_error);
  }
  if (worker_error) std::rethrow_exception(worker_error);
}

void ThreadPool::wait_for_task(uint32_t seen) {
  auto changed = [&] { return generation_.load(std::memory_order_acquire) != seen; };
  if (spin_until(changed, worker_spin())) return;
  sleeping_workers_.fetch_add(1, std::memory_order_seq_cst);
  while (!changed()) futex_wait(&generation_, seen);
  sleeping_workers_.fetch_sub(1, std::memory_order_relaxed);
}

void ThreadPool::wait_for_workers() {
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (spin_until(done, 2 * worker_spin())) return;
  caller_sleeping_.store(1, std::memory_order_seq_cst);
  for (uint32_t p; (p = pending_.load(std::memory_order_seq_cst)) != 0;) futex_wait(&pending_, p);
  caller_sleeping_.store(0, std::memory_order_relaxed);
}

void ThreadPool::worker_main(int index) {
  t_in_task = true;  // a worker never dispatches work of its own
  uint32_t seen = 0;
  for (;;) {
    wait_for_task(seen);
    seen = generation_.load(std::memory_order_acquire);
    if (stopping_) return;
    try {
      (*task_)(index, n_threads_);
    } catch (...) {
      std::lock_guard<std::mutex> guard(g_error_mutex);
      if (!g_error) g_error = std::current_exception();
    }
    if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
        caller_sleeping_.load(std::memory_order_seq_cst))
      futex_wake_all(&pending_);
  }
}

int physical_core_count() {
  int fallback = int(std::thread::hardware_concurrency());
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    fallback = CPU_COUNT(&set);
    // Hyper-threads of one core share its execution units: count cores.
    std::set<std::pair<std::string, std::string>> cores;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
      if (!CPU_ISSET(cpu, &set)) continue;
      const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
      std::ifstream package(dir + "physical_package_id"), core(dir + "core_id");
      std::string p, c;
      if (!(package >> p) || !(core >> c)) {
        cores.clear();
        break;
      }
      cores.insert({p, c});
    }
    if (!cores.empty()) return int(cores.size());
  }
#endif
  return std::max(1, fallback);
}

namespace {
std::mutex g_pool_mutex;
std::unique_ptr<ThreadPool> g_pool;
std::atomic<ThreadPool*> g_pool_ptr{nullptr};
}  // namespace

ThreadPool& thread_pool() {
  if (ThreadPool* p = g_pool_ptr.load(std::memory_order_acquire)) return *p;
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) {
    g_pool = std::make_unique<ThreadPool>(physical_core_count());
    g_pool_ptr.store(g_pool.get(), std::memory_order_release);
  }
  return *g_pool;
}

void set_thread_count(int n) {
  if (n <= 0) n = physical_core_count();
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (g_pool && g_pool->size() == n) return;
  g_pool_ptr.store(nullptr, std::memory_order_release);
  g_pool.reset();
  g_pool = std::make_unique<ThreadPool>(n);
  g_pool_ptr.store(g_pool.get(), std::memory_order_release);
}

int thread_count() {
  return thread_pool().size();
}

void parallel_for(int64_t n, FunctionRef<void(int64_t, int64_t)> fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n + grain - 1) / grain;
  ThreadPool& pool = thread_pool();
  if (n_grains <= 1 || pool.size() == 1 || ThreadPool::in_task()) {
    fn(0, n);
    return;
  }
  pool.run([&](int t, int n_threads) {
    const int64_t g0 = n_grains * t / n_threads;
    const int64_t g1 = n_grains * (t + 1) / n_threads;
    const int64_t begin = std::min(n, g0 * grain);
    const int64_t end = std::min(n, g1 * grain);
    if (begin < end) fn(begin, end);
  });
}

void parallel_for_chunked(int64_t n, FunctionRef<void(int64_t, int64_t)> fn, int64_t grain,
                          int chunks_per_thread) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n_grains = (n + grain - 1) / grain;
  ThreadPool& pool = thread_pool();
  if (n_grains <= 1 || pool.size() == 1 || ThreadPool::in_task()) {
    fn(0, n);
    return;
  }
  const int64_t n_chunks =
      std::min<int64_t>(n_grains, int64_t(pool.size()) * std::max(1, chunks_per_thread));
  std::atomic<int64_t> next{0};
  pool.run([&](int, int) {
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < n_chunks;) {
      const int64_t begin = std::min(n, n_grains * c / n_chunks * grain);
      const int64_t end = std::min(n, n_grains * (c + 1) / n_chunks * grain);
      if (begin < end) fn(begin, end);
    }
  });
}

}  // namespace pocket
