// Per-key limits over named counters. The counters live in the process (seeded
// from the SQLite ledger at start, so a restart keeps them) or in Redis (shared by
// every gateway process that points at it). Windows are fixed: the current UTC
// minute, day and month.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "gateway/config.h"

struct redisContext;

namespace pocket::gateway {

class Counters {
 public:
  virtual ~Counters() = default;
  // Adds delta to the counter (created with a time to live), returns the new value.
  virtual int64_t add(const std::string& name, int64_t delta, int64_t ttl_s) = 0;
  virtual int64_t get(const std::string& name) = 0;
  virtual bool shared() const { return false; }
};

class LocalCounters : public Counters {
 public:
  int64_t add(const std::string& name, int64_t delta, int64_t ttl_s) override;
  int64_t get(const std::string& name) override;

 private:
  struct Entry {
    int64_t value = 0;
    int64_t expires_s = 0;
  };
  std::mutex mu_;
  std::unordered_map<std::string, Entry> map_;
  int64_t last_sweep_ = 0;
};

// redis://host:port[/db]. A pool of connections; a failed one is dropped and the command retried
// once.
class RedisCounters : public Counters {
 public:
  explicit RedisCounters(const std::string& url);
  ~RedisCounters() override;
  int64_t add(const std::string& name, int64_t delta, int64_t ttl_s) override;
  int64_t get(const std::string& name) override;
  bool shared() const override { return true; }

 private:
  redisContext* connect();
  redisContext* take();
  void give(redisContext* c);
  std::string host_;
  int port_ = 6379;
  int db_ = 0;
  std::mutex mu_;
  std::vector<redisContext*> idle_;  // pooled connections, one per concurrent caller
};

std::unique_ptr<Counters> make_counters(const std::string& redis_url);

struct Windows {
  int64_t minute, day, month;                          // window ids
  int64_t to_next_minute, to_next_day, to_next_month;  // seconds
};
Windows windows_at(int64_t unix_s);

struct LimitHit {
  std::string limit;  // e.g. "requests_per_minute"
  std::string message;
  int64_t retry_after_s = 1;
};

// Money in the counters: nano-dollars.
constexpr double kNanoDollars = 1e9;

class Limiter {
 public:
  explicit Limiter(Counters& c) : c_(c) {}
  // Admits one request (counts it and takes a concurrency slot) or says which limit it hits.
  std::optional<LimitHit> admit(int64_t key_id, const Limits& l, int64_t unix_s);
  // The request finished: frees the slot, adds its tokens and cost.
  void finish(int64_t key_id, const Limits& l, int64_t tokens, double dollars, int64_t unix_s);
  // Adds already-recorded usage (seeding after a restart, without Redis).
  void seed(int64_t key_id, int64_t requests_minute, int64_t tokens_minute, int64_t tokens_day,
            int64_t tokens_month, double dollars_day, double dollars_month, int64_t unix_s);
  Counters& counters() { return c_; }

 private:
  Counters& c_;
};

}  // namespace pocket::gateway
