// One process-wide pool of worker threads (design/engine.md section 6).
//
// A kernel splits its work statically: run(task) calls task(t, n) once on each
// of the n = size() threads (the caller is thread 0) and returns when all have
// finished. Workers spin for a short while after each task, so back-to-back
// kernels of a decode step do not pay a sleep/wake-up each; after that they
// sleep on a futex until the next task (POCKET_SPIN_US sets how long they
// stay awake, default 1000; 0 for a machine shared with busy processes).
//
// No nested parallelism: run() from inside a task, or while another thread is
// using the pool, simply runs task(0, 1) on the calling thread.
//
//   pocket::parallel_for(n_rows, [&](int64_t begin, int64_t end) { ... });
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace pocket {

// A non-owning reference to a callable (no allocation, unlike std::function).
template <typename Signature>
class FunctionRef;
template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
  FunctionRef(F&& f)  // NOLINT: implicit by design
      : object_(const_cast<void*>(static_cast<const void*>(&f))),
        call_([](void* o, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(args)...);
        }) {}
  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

class ThreadPool {
 public:
  // n_threads counts the calling thread: n_threads - 1 workers are started.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls task(thread_index, n_threads) on every thread of the pool and waits.
  // Nested or concurrent use runs task(0, 1) inline instead.
  void run(FunctionRef<void(int, int)> task);

  // True on a pool worker, or on a thread currently inside run().
  static bool in_task();

 private:
  void worker_main(int index);
  void wait_for_task(uint32_t seen);
  void wait_for_workers();

  const int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex busy_;  // held by the thread that is dispatching a task

  FunctionRef<void(int, int)>* task_ = nullptr;
  bool stopping_ = false;
  // Futex words. generation_ changes once per task; pending_ counts workers
  // still running the current task.
  alignas(64) std::atomic<uint32_t> generation_{0};
  std::atomic<int32_t> sleeping_workers_{0};
  alignas(64) std::atomic<uint32_t> pending_{0};
  std::atomic<int32_t> caller_sleeping_{0};
};

// The number of physical cores this process may run on (hyper-threads of one
// core count once); at least 1.
int physical_core_count();

// The process-wide pool, created on first use with physical_core_count()
// threads unless set_thread_count() chose another size.
ThreadPool& thread_pool();
// Replaces the process-wide pool (n <= 0: physical_core_count()). Call it at
// start-up, not while kernels run.
void set_thread_count(int n);
int thread_count();

// Splits [0, n) into one contiguous range per pool thread, each a multiple of
// `grain` long except the last, and calls fn(begin, end) for each non-empty
// range. Runs inline when n is at most one grain.
void parallel_for(int64_t n, FunctionRef<void(int64_t, int64_t)> fn, int64_t grain = 1);

// Like parallel_for, but [0, n) is cut into about chunks_per_thread chunks per
// thread (each a multiple of `grain`, in order) that the threads claim one at a
// time: a thread that is slowed down (another process took its core) leaves
// its chunks to the others instead of holding everyone up. The chunks do not
// depend on timing, only which thread runs each one.
void parallel_for_chunked(int64_t n, FunctionRef<void(int64_t, int64_t)> fn, int64_t grain = 1,
                          int chunks_per_thread = 4);

}  // namespace pocket
