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
struct redisReply;

namespace pocket::gateway {

class Counters {
 public:
  virtual ~Counters() = default;
  // Adds delta to the counter (created with a time to live), returns the new value.
  virtual int64_t add(const std::string& name, int64_t delta, int64_t ttl_s) = 0;
  virtual int64_t get(const std::string& name) = 0;
  // Concurrency slots: `holder` (unique per request) takes one of the `limit` slots of `name`.
  // Shared stores hold each slot as a lease of lease_ms that renew() extends, so the slots
  // of a crashed process come free by themselves.
  virtual bool acquire(const std::string& name, const std::string& holder, int64_t limit,
                       int64_t lease_ms) = 0;
  virtual void release(const std::string& name, const std::string& holder) = 0;
  // Extends the leases of held slots: pairs of (name, holder).
  virtual void renew(const std::vector<std::pair<std::string, std::string>>& held,
                     int64_t lease_ms) {}
  virtual bool shared() const { return false; }
};

class LocalCounters : public Counters {
 public:
  int64_t add(const std::string& name, int64_t delta, int64_t ttl_s) override;
  int64_t get(const std::string& name) override;
  // In process: a slot lives as long as the process (no lease).
  bool acquire(const std::string& name, const std::string& holder, int64_t limit,
               int64_t lease_ms) override;
  void release(const std::string& name, const std::string& holder) override;

 private:
  std::unordered_map<std::string, int64_t> slots_;
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
  // A sorted set per name: holder -> lease end (Redis server time, ms); expired holders are
  // dropped before counting.
  bool acquire(const std::string& name, const std::string& holder, int64_t limit,
               int64_t lease_ms) override;
  void release(const std::string& name, const std::string& holder) override;
  void renew(const std::vector<std::pair<std::string, std::string>>& held,
             int64_t lease_ms) override;
  bool shared() const override { return true; }

 private:
  // Runs the commands appended by `append` on a pooled connection and returns the replies
  // (the caller frees them); retried once on a fresh connection.
  template <class Append>
  std::vector<redisReply*> pipeline(size_t n, Append append);
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
  // Admits one request (counts it and takes a concurrency slot for `holder`, unique per request)
  // or says which limit it hits.
  std::optional<LimitHit> admit(int64_t key_id, const Limits& l, int64_t unix_s,
                                const std::string& holder, int64_t lease_ms = 10000);
  // The request finished: frees the slot, adds its tokens and cost.
  void finish(int64_t key_id, const Limits& l, int64_t tokens, double dollars, int64_t unix_s,
              const std::string& holder);
  // The counter name of a key's concurrency slots.
  static std::string slots_name(int64_t key_id);
  // Adds already-recorded usage (seeding after a restart, without Redis).
  void seed(int64_t key_id, int64_t requests_minute, int64_t tokens_minute, int64_t tokens_day,
            int64_t tokens_month, double dollars_day, double dollars_month, int64_t unix_s);
  Counters& counters() { return c_; }

 private:
  Counters& c_;
};

}  // namespace pocket::gateway
