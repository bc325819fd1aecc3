#include "gateway/limits.h"

#include <ctime>

#include <hiredis/hiredis.h>

#include "util/error.h"

namespace pocket::gateway {

int64_t LocalCounters::add(const std::string& name, int64_t delta, int64_t ttl_s) {
  const int64_t now = std::time(nullptr);
  std::lock_guard lock(mu_);
  if (now - last_sweep_ > 60) {
    for (auto it = map_.begin(); it != map_.end();)
      it = it->second.expires_s <= now ? map_.erase(it) : std::next(it);
    last_sweep_ = now;
  }
  Entry& e = map_[name];
  if (e.expires_s != 0 && e.expires_s <= now) e = Entry{};
  if (e.expires_s == 0) e.expires_s = now + ttl_s;
  e.value += delta;
  return e.value;
}

int64_t LocalCounters::get(const std::string& name) {
  const int64_t now = std::time(nullptr);
  std::lock_guard lock(mu_);
  auto it = map_.find(name);
  if (it == map_.end() || it->second.expires_s <= now) return 0;
  return it->second.value;
}

bool LocalCounters::acquire(const std::string& name, const std::string&, int64_t limit, int64_t) {
  std::lock_guard lock(mu_);
  int64_t& n = slots_[name];
  if (n >= limit) return false;
  n++;
  return true;
}

void LocalCounters::release(const std::string& name, const std::string&) {
  std::lock_guard lock(mu_);
  auto it = slots_.find(name);
  if (it != slots_.end() && --it->second <= 0) slots_.erase(it);
}

RedisCounters::RedisCounters(const std::string& url) {
  std::string rest = url.substr(url.find("://") + 3);
  const auto slash = rest.find('/');
  if (slash != std::string::npos) {
    db_ = std::atoi(rest.c_str() + slash + 1);
    rest = rest.substr(0, slash);
  }
  const auto colon = rest.rfind(':');
  host_ = rest.substr(0, colon);
  if (colon != std::string::npos) port_ = std::atoi(rest.c_str() + colon + 1);
  give(connect());  // fails now if redis is not there
}

RedisCounters::~RedisCounters() {
  for (auto* c : idle_) redisFree(c);
}

redisContext* RedisCounters::connect() {
  timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout(host_.c_str(), port_, tv);
  if (!c || c->err) {
    const std::string msg = c ? c->errstr : "out of memory";
    if (c) redisFree(c);
    fail("redis ", host_, ":", port_, ": ", msg);
  }
  redisSetTimeout(c, tv);
  if (db_ != 0) {
    auto* r = static_cast<redisReply*>(redisCommand(c, "SELECT %d", db_));
    if (r) freeReplyObject(r);
  }
  return c;
}

redisContext* RedisCounters::take() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      redisContext* c = idle_.back();
      idle_.pop_back();
      return c;
    }
  }
  return connect();
}

void RedisCounters::give(redisContext* c) {
  std::lock_guard lock(mu_);
  if (idle_.size() < 64)
    idle_.push_back(c);
  else
    redisFree(c);
}

namespace {
int64_t reply_int(redisReply* r) {
  if (!r) return 0;
  int64_t v = 0;
  if (r->type == REDIS_REPLY_INTEGER)
    v = r->integer;
  else if (r->type == REDIS_REPLY_STRING)
    v = std::strtoll(r->str, nullptr, 10);
  else if (r->type == REDIS_REPLY_ARRAY && r->elements > 0)
    v = reply_int(r->element[0]);
  return v;
}
}  // namespace

template <class Append>
std::vector<redisReply*> RedisCounters::pipeline(size_t n, Append append) {
  for (int attempt = 0; attempt < 2; attempt++) {
    redisContext* c = take();
    append(c);
    std::vector<redisReply*> replies;
    for (size_t i = 0; i < n; i++) {
      void* r = nullptr;
      if (redisGetReply(c, &r) != REDIS_OK) break;
      replies.push_back(static_cast<redisReply*>(r));
    }
    if (replies.size() == n) {
      give(c);
      return replies;
    }
    for (auto* r : replies) freeReplyObject(r);
    redisFree(c);
  }
  fail("redis: command failed");
}

int64_t RedisCounters::add(const std::string& name, int64_t delta, int64_t ttl_s) {
  const std::string key = "pocket:gw:" + name;
  // One round trip: the increment and the expiry (NX keeps the first window end).
  auto r = pipeline(2, [&](redisContext* c) {
    redisAppendCommand(c, "INCRBY %s %lld", key.c_str(), (long long)delta);
    redisAppendCommand(c, "EXPIRE %s %lld NX", key.c_str(), (long long)ttl_s);
  });
  const int64_t v = reply_int(r[0]);
  for (auto* x : r) freeReplyObject(x);
  return v;
}

int64_t RedisCounters::get(const std::string& name) {
  const std::string key = "pocket:gw:" + name;
  auto r = pipeline(1, [&](redisContext* c) { redisAppendCommand(c, "GET %s", key.c_str()); });
  const int64_t v = reply_int(r[0]);
  freeReplyObject(r[0]);
  return v;
}

namespace {
// Lease ends are in the Redis server's clock, so gateways on machines whose clocks differ
// agree. The whole set expires with its last lease (no holder left renewing it).
const char* kAcquireScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
)lua";
const char* kRenewScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
if n > 0 and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n
)lua";
}  // namespace

bool RedisCounters::acquire(const std::string& name, const std::string& holder, int64_t limit,
                            int64_t lease_ms) {
  const std::string key = "pocket:gw:" + name;
  auto r = pipeline(1, [&](redisContext* c) {
    redisAppendCommand(c, "EVAL %s 1 %s %s %lld %lld", kAcquireScript, key.c_str(), holder.c_str(),
                       (long long)limit, (long long)lease_ms);
  });
  const bool ok = r[0]->type == REDIS_REPLY_INTEGER && r[0]->integer == 1;
  const std::string err = r[0]->type == REDIS_REPLY_ERROR ? r[0]->str : "";
  freeReplyObject(r[0]);
  if (!err.empty()) fail("redis: ", err);
  return ok;
}

void RedisCounters::release(const std::string& name, const std::string& holder) {
  const std::string key = "pocket:gw:" + name;
  auto r = pipeline(1, [&](redisContext* c) {
    redisAppendCommand(c, "ZREM %s %s", key.c_str(), holder.c_str());
  });
  freeReplyObject(r[0]);
}

void RedisCounters::renew(const std::vector<std::pair<std::string, std::string>>& held,
                          int64_t lease_ms) {
  if (held.empty()) return;
  auto r = pipeline(held.size(), [&](redisContext* c) {
    for (const auto& [name, holder] : held)
      redisAppendCommand(c, "EVAL %s 1 %s %s %lld", kRenewScript, ("pocket:gw:" + name).c_str(),
                         holder.c_str(), (long long)lease_ms);
  });
  for (auto* x : r) freeReplyObject(x);
}

std::unique_ptr<Counters> make_counters(const std::string& redis_url) {
  if (redis_url.empty()) return std::make_unique<LocalCounters>();
  return std::make_unique<RedisCounters>(redis_url);
}

Windows windows_at(int64_t t) {
  Windows w;
  w.minute = t / 60;
  w.day = t / 86400;
  const time_t tt = time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  w.month = int64_t(tm.tm_year) * 12 + tm.tm_mon;
  w.to_next_minute = 60 - t % 60;
  w.to_next_day = 86400 - t % 86400;
  std::tm next{};
  next.tm_year = tm.tm_mon == 11 ? tm.tm_year + 1 : tm.tm_year;
  next.tm_mon = (tm.tm_mon + 1) % 12;
  next.tm_mday = 1;
  w.to_next_month = int64_t(timegm(&next)) - t;
  return w;
}

namespace {
std::string name(const char* kind, int64_t key, int64_t window) {
  return str(kind, ":", key, ":", window);
}
}  // namespace

std::string Limiter::slots_name(int64_t key_id) {
  return str("slots:", key_id);
}

std::optional<LimitHit> Limiter::admit(int64_t id, const Limits& l, int64_t t,
                                       const std::string& holder, int64_t lease_ms) {
  const Windows w = windows_at(t);
  // Budgets and token rates: checked against what was already used.
  if (l.tokens_per_minute > 0 && c_.get(name("tpm", id, w.minute)) >= l.tokens_per_minute)
    return LimitHit{"tokens_per_minute",
                    str("Rate limit reached: tokens per minute (limit ", l.tokens_per_minute, ")"),
                    w.to_next_minute};
  if (l.tokens_per_day > 0 && c_.get(name("tpd", id, w.day)) >= l.tokens_per_day)
    return LimitHit{"tokens_per_day",
                    str("Budget reached: tokens per day (limit ", l.tokens_per_day, ")"),
                    w.to_next_day};
  if (l.tokens_per_month > 0 && c_.get(name("tpmo", id, w.month)) >= l.tokens_per_month)
    return LimitHit{"tokens_per_month",
                    str("Budget reached: tokens per month (limit ", l.tokens_per_month, ")"),
                    w.to_next_month};
  if (l.dollars_per_day > 0 &&
      double(c_.get(name("usdd", id, w.day))) >= l.dollars_per_day * kNanoDollars)
    return LimitHit{"dollars_per_day",
                    str("Budget reached: dollars per day (limit ", l.dollars_per_day, ")"),
                    w.to_next_day};
  if (l.dollars_per_month > 0 &&
      double(c_.get(name("usdm", id, w.month))) >= l.dollars_per_month * kNanoDollars)
    return LimitHit{"dollars_per_month",
                    str("Budget reached: dollars per month (limit ", l.dollars_per_month, ")"),
                    w.to_next_month};
  if (l.requests_per_minute > 0 &&
      c_.add(name("rpm", id, w.minute), 1, 120) > l.requests_per_minute) {
    c_.add(name("rpm", id, w.minute), -1, 120);  // refused: not counted
    return LimitHit{
        "requests_per_minute",
        str("Rate limit reached: requests per minute (limit ", l.requests_per_minute, ")"),
        w.to_next_minute};
  }
  if (l.concurrent > 0) {
    if (!c_.acquire(slots_name(id), holder, l.concurrent, lease_ms)) {
      if (l.requests_per_minute > 0)
        c_.add(name("rpm", id, w.minute), -1, 120);  // refused: not counted
      return LimitHit{"concurrent",
                      str("Rate limit reached: concurrent requests (limit ", l.concurrent, ")"), 1};
    }
  }
  return std::nullopt;
}

void Limiter::finish(int64_t id, const Limits& l, int64_t tokens, double dollars, int64_t t,
                     const std::string& holder) {
  const Windows w = windows_at(t);
  if (l.concurrent > 0) c_.release(slots_name(id), holder);
  if (tokens > 0) {
    c_.add(name("tpm", id, w.minute), tokens, 120);
    c_.add(name("tpd", id, w.day), tokens, 2 * 86400);
    c_.add(name("tpmo", id, w.month), tokens, 32 * 86400);
  }
  const auto nano = int64_t(dollars * kNanoDollars + 0.5);
  if (nano > 0) {
    c_.add(name("usdd", id, w.day), nano, 2 * 86400);
    c_.add(name("usdm", id, w.month), nano, 32 * 86400);
  }
}

void Limiter::seed(int64_t id, int64_t rm, int64_t tm, int64_t td, int64_t tmo, double dd,
                   double dm, int64_t t) {
  const Windows w = windows_at(t);
  if (rm) c_.add(name("rpm", id, w.minute), rm, 120);
  if (tm) c_.add(name("tpm", id, w.minute), tm, 120);
  if (td) c_.add(name("tpd", id, w.day), td, 2 * 86400);
  if (tmo) c_.add(name("tpmo", id, w.month), tmo, 32 * 86400);
  if (dd > 0) c_.add(name("usdd", id, w.day), int64_t(dd * kNanoDollars + 0.5), 2 * 86400);
  if (dm > 0) c_.add(name("usdm", id, w.month), int64_t(dm * kNanoDollars + 0.5), 32 * 86400);
}

}  // namespace pocket::gateway
