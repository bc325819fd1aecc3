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

int64_t RedisCounters::add(const std::string& name, int64_t delta, int64_t ttl_s) {
  const std::string key = "pocket:gw:" + name;
  for (int attempt = 0; attempt < 2; attempt++) {
    redisContext* c = take();
    // One round trip: the increment and the expiry (NX keeps the first window end).
    redisAppendCommand(c, "INCRBY %s %lld", key.c_str(), (long long)delta);
    redisAppendCommand(c, "EXPIRE %s %lld NX", key.c_str(), (long long)ttl_s);
    redisReply* r1 = nullptr;
    redisReply* r2 = nullptr;
    if (redisGetReply(c, reinterpret_cast<void**>(&r1)) == REDIS_OK &&
        redisGetReply(c, reinterpret_cast<void**>(&r2)) == REDIS_OK) {
      const int64_t v = reply_int(r1);
      freeReplyObject(r1);
      freeReplyObject(r2);
      give(c);
      return v;
    }
    if (r1) freeReplyObject(r1);
    redisFree(c);
  }
  fail("redis: command failed");
}

int64_t RedisCounters::get(const std::string& name) {
  const std::string key = "pocket:gw:" + name;
  for (int attempt = 0; attempt < 2; attempt++) {
    redisContext* c = take();
    auto* r = static_cast<redisReply*>(redisCommand(c, "GET %s", key.c_str()));
    if (r) {
      const int64_t v = reply_int(r);
      freeReplyObject(r);
      give(c);
      return v;
    }
    redisFree(c);
  }
  fail("redis: command failed");
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

std::optional<LimitHit> Limiter::admit(int64_t id, const Limits& l, int64_t t) {
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
    if (c_.add(str("conc:", id), 1, 3600) > l.concurrent) {
      c_.add(str("conc:", id), -1, 3600);
      if (l.requests_per_minute > 0)
        c_.add(name("rpm", id, w.minute), -1, 120);  // refused: not counted
      return LimitHit{"concurrent",
                      str("Rate limit reached: concurrent requests (limit ", l.concurrent, ")"), 1};
    }
  }
  return std::nullopt;
}

void Limiter::finish(int64_t id, const Limits& l, int64_t tokens, double dollars, int64_t t) {
  const Windows w = windows_at(t);
  if (l.concurrent > 0) c_.add(str("conc:", id), -1, 3600);
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
