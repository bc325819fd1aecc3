// Unit tests of the gateway parts: config parsing and errors, SHA-256 and keys in
// SQLite, the usage ledger, limit counters (in process and a real redis-server), costs.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gateway/config.h"
#include "gateway/db.h"
#include "gateway/gateway.h"
#include "gateway/limits.h"
#include "util/error.h"

namespace pocket::gateway {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("pocket_gw_" + std::to_string(getpid()) + "_" + name))
      .string();
}

const char* kConfig = R"(
listen = "127.0.0.1:0"
admin_key = "adm"
[database]
path = "x.db"
[prices]
electricity_per_kwh = 0.3
pue = 1.5
[limits]
requests_per_minute = 10
[[pools]]
name = "small"
models = ["tiny"]
[[pools.backends]]
url = "http://127.0.0.1:1"
weight = 2
[[pools.backends]]
url = "http://127.0.0.1:2/"
models = ["a", "b"]
)";

TEST(GatewayConfig, Parses) {
  GatewayConfig c = parse_config(kConfig, "gw.toml");
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.port, 0);
  EXPECT_EQ(c.admin_key, "adm");
  EXPECT_EQ(c.db_path, "x.db");
  EXPECT_DOUBLE_EQ(c.prices.pue, 1.5);
  EXPECT_EQ(c.default_limits.requests_per_minute, 10);
  ASSERT_EQ(c.pools.size(), 1u);
  ASSERT_EQ(c.pools[0].backends.size(), 2u);
  EXPECT_EQ(c.pools[0].backends[0].models, std::vector<std::string>{"tiny"});
  EXPECT_DOUBLE_EQ(c.pools[0].backends[0].weight, 2);
  EXPECT_EQ(c.pools[0].backends[1].url, "http://127.0.0.1:2");
  EXPECT_EQ(c.pools[0].backends[1].models, (std::vector<std::string>{"a", "b"}));
}

void expect_error(const std::string& text, const std::string& needle) {
  try {
    parse_config(text, "gw.toml");
    FAIL() << "no error for: " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(GatewayConfig, ErrorsNameKeyAndLine) {
  const std::string pool = "\n[[pools]]\nmodels=[\"m\"]\n[[pools.backends]]\nurl=\"http://h:1\"\n";
  expect_error("listen = 5" + pool, "gw.toml:1: key 'listen' must be a string");
  expect_error("\n\nbogus = 1" + pool, "gw.toml:3: key 'bogus' is unknown");
  expect_error("[limits]\nrequests_per_minute = -1" + pool,
               "gw.toml:2: key 'requests_per_minute' must be in");
  expect_error("[prices]\npue = 0.5" + pool, "gw.toml:2: key 'pue' must be >= 1");
  expect_error("[redis]\nurl = \"http://x\"" + pool,
               "gw.toml:2: key 'redis.url' must start with redis://");
  expect_error("[[pools]]\n[[pools.backends]]\nurl=\"http://h:1\"\nweight=0\n",
               "key 'weight' must be > 0");
  expect_error("[[pools]]\n[[pools.backends]]\nurl=\"http://h:1\"\n", "key 'models' is missing");
  expect_error("admin_key = \"x\"\n", "key 'pools' is missing");
  expect_error("listen = \"h:port\"" + pool, "gw.toml:1: key 'listen'");
  expect_error("a = [", "gw.toml:1:");
  expect_error("[prices]\nidle_watts = 40" + pool, "gw.toml:2: key 'idle_watts' was removed");
  expect_error("[redis]\nslot_lease_ms = 5" + pool,
               "gw.toml:2: key 'redis.slot_lease_ms' must be in");
}

TEST(GatewayKeys, Sha256AndConstantTimeCompare) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_TRUE(equal_ct("abc", "abc"));
  EXPECT_FALSE(equal_ct("abc", "abd"));
  EXPECT_FALSE(equal_ct("abc", "abcd"));
  const std::string a = new_api_key(), b = new_api_key();
  EXPECT_EQ(a.size(), 51u);
  EXPECT_NE(a, b);
}

TEST(GatewayKeys, LifecycleInSqlite) {
  const std::string path = temp_path("keys.db");
  std::filesystem::remove(path);
  std::string secret;
  {
    Db db(path);
    KeyInfo k;
    k.name = "alice";
    k.models = {"tiny"};
    k.limits.requests_per_minute = 5;
    auto [rec, s] = db.create_key(k);
    secret = s;
    EXPECT_EQ(rec.hash, sha256_hex(secret));
    EXPECT_EQ(rec.prefix, secret.substr(0, 10));
  }
  Db db(path);  // reopened: persisted, never the key itself
  auto keys = db.list_keys();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].name, "alice");
  EXPECT_EQ(keys[0].limits.requests_per_minute, 5);
  EXPECT_EQ(keys[0].hash, sha256_hex(secret));
  KeyInfo k = keys[0];
  apply_key_json(nlohmann::json::parse(R"({"enabled":false,"limits":{"tokens_per_minute":7}})"), k);
  db.update_key(k);
  auto got = db.get_key(k.id);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->enabled);
  EXPECT_EQ(got->limits.tokens_per_minute, 7);
  EXPECT_EQ(got->limits.requests_per_minute, 5);
  EXPECT_TRUE(db.revoke_key(k.id));
  EXPECT_TRUE(db.get_key(k.id)->revoked);
  EXPECT_FALSE(db.revoke_key(999));
  EXPECT_THROW(apply_key_json(nlohmann::json::parse(R"({"limits":{"nope":1}})"), k), Error);
  // No file holds the key in clear.
  std::string bytes;
  for (const auto& p : {path, path + "-wal"}) {
    FILE* f = std::fopen(p.c_str(), "rb");
    if (!f) continue;
    char buf[4096];
    while (size_t n = std::fread(buf, 1, sizeof buf, f)) bytes.append(buf, n);
    std::fclose(f);
  }
  EXPECT_EQ(bytes.find(secret), std::string::npos);
  std::filesystem::remove(path);
}

TEST(GatewayKeys, SeveralOpenersOfANewFileAtOnce) {
  // Two gateways started together on a fresh database file: each must open it (CI once saw
  // "database is locked" from PRAGMA journal_mode=WAL in the second process).
  for (int round = 0; round < 20; round++) {
    const std::string path = temp_path("race.db");
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    std::vector<std::string> errors(6);
    std::vector<std::thread> threads;
    for (size_t i = 0; i < errors.size(); i++)
      threads.emplace_back([&, i] {
        try {
          Db db(path);
          db.list_keys();
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      });
    for (auto& t : threads) t.join();
    for (const auto& e : errors) EXPECT_EQ(e, "") << "round " << round;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
}

TEST(GatewayUsage, LedgerTotalsAndReports) {
  const std::string path = temp_path("usage.db");
  std::filesystem::remove(path);
  Db db(path);
  std::vector<UsageRow> rows;
  for (int i = 0; i < 3; i++) {
    UsageRow r;
    r.ts_ms = 1000 + i;
    r.key_id = 1 + (i == 2);
    r.model = i ? "b" : "a";
    r.prompt_tokens = 10;
    r.cached_tokens = 2;
    r.completion_tokens = 5;
    r.status = 200;
    r.cost_local = 0.001;
    r.cost_cloud = 0.01;
    rows.push_back(r);
  }
  db.insert_usage(rows);
  const Totals t = db.totals(1, 0);
  EXPECT_EQ(t.requests, 2);
  EXPECT_EQ(t.prompt_tokens, 20);
  EXPECT_EQ(t.cached_tokens, 4);
  EXPECT_EQ(t.completion_tokens, 10);
  EXPECT_EQ(db.totals(-1, 1002).requests, 1);
  const auto by_model = db.report("model", -1, 0);
  ASSERT_EQ(by_model.size(), 2u);
  EXPECT_EQ(by_model[1]["model"], "b");
  EXPECT_EQ(by_model[1]["requests"], 2);
  EXPECT_NEAR(by_model[1]["cloud_per_1m_tokens"].get<double>(), 0.02 * 1e6 / 30, 1e-9);
  EXPECT_EQ(db.report("day", -1, 0)[0]["day"], "1970-01-01");
  EXPECT_THROW(db.report("nope", -1, 0), Error);
  UsageRow refused;
  refused.ts_ms = 5000;
  refused.key_id = 1;
  refused.status = 429;
  db.insert_usage({refused});
  EXPECT_EQ(db.totals(1, 0).requests, 3);
  EXPECT_EQ(db.totals(1, 0).admitted, 2);  // what a restart counts against requests/min
  std::filesystem::remove(path);
}

TEST(GatewayCost, EnergyAndCloudPrices) {
  Prices p;
  p.electricity_per_kwh = 0.36;
  p.pue = 1.5;
  p.hardware_per_hour = 3.6;
  p.cloud_input_per_1m = 1;
  p.cloud_cached_per_1m = 0.5;
  p.cloud_output_per_1m = 4;
  const Cost c = cost_of(p, 3.6e6, 1.0, 1000, 200, 500);
  EXPECT_NEAR(c.local, 0.36 * 1.5 + 0.001, 1e-12);
  EXPECT_NEAR(c.cloud, (800 * 1 + 200 * 0.5 + 500 * 4) / 1e6, 1e-15);
  EXPECT_NEAR(c.energy_j, 3.6e6, 0);
}

TEST(GatewayLimits, Windows) {
  const Windows w = windows_at(1700000000);  // 2023-11-14 22:13:20 UTC
  EXPECT_EQ(w.to_next_minute, 40);
  EXPECT_EQ(w.to_next_day, 86400 - (22 * 3600 + 13 * 60 + 20));
  EXPECT_EQ(w.to_next_month, 1701388800 - 1700000000);  // 2023-12-01
}

// Each limit trips and then recovers: in the next window (the limiter takes the time, so a
// window rollover needs no waiting) or when the slot is freed.
void check_limiter(Counters& c, int64_t id) {
  Limiter lim(c);
  Limits l;
  l.requests_per_minute = 4;
  l.concurrent = 2;
  l.tokens_per_minute = 100;
  const int64_t t = 1700000000;  // 22:13:20 UTC: 40 s left in the minute
  auto a = lim.admit(id, l, t, "a"), b = lim.admit(id, l, t, "b");
  EXPECT_FALSE(a);
  EXPECT_FALSE(b);
  auto hit = lim.admit(id, l, t, "c");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->limit, "concurrent");
  EXPECT_EQ(hit->retry_after_s, 1);
  lim.finish(id, l, 60, 0, t, "a");
  EXPECT_FALSE(lim.admit(id, l, t, "d"));  // third request of the minute, a's slot reused
  hit = lim.admit(id, l, t, "e");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->limit, "concurrent");
  lim.finish(id, l, 50, 0, t, "b");
  hit = lim.admit(id, l, t, "f");  // 110 tokens this minute
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->limit, "tokens_per_minute");
  EXPECT_EQ(hit->retry_after_s, 40);
  EXPECT_FALSE(lim.admit(id, l, t + 40, "g"));  // next minute: fresh window
  lim.finish(id, l, 0, 0, t + 40, "d");
  lim.finish(id, l, 0, 0, t + 40, "g");

  // Requests per minute: trips on the 3rd, the refused ones are not counted, recovers at the
  // minute's end (Retry-After) and not a second earlier.
  Limits rpm;
  rpm.requests_per_minute = 2;
  const int64_t id2 = id + 1;
  EXPECT_FALSE(lim.admit(id2, rpm, t, "r1"));
  EXPECT_FALSE(lim.admit(id2, rpm, t + 10, "r2"));
  for (int i = 0; i < 3; i++) {
    hit = lim.admit(id2, rpm, t + 20, "r3");
    ASSERT_TRUE(hit);
    EXPECT_EQ(hit->limit, "requests_per_minute");
    EXPECT_EQ(hit->retry_after_s, 20);
  }
  EXPECT_TRUE(lim.admit(id2, rpm, t + 39, "r4"));
  EXPECT_FALSE(lim.admit(id2, rpm, t + 20 + hit->retry_after_s, "r5"));
  EXPECT_FALSE(lim.admit(id2, rpm, t + 41, "r6"));
  EXPECT_TRUE(lim.admit(id2, rpm, t + 42, "r7"));

  // Budgets: tokens per day, dollars per day and per month; each recovers in the next window.
  Limits day;
  day.tokens_per_day = 1000;
  day.dollars_per_day = 0.01;
  const int64_t id3 = id + 2;
  EXPECT_FALSE(lim.admit(id3, day, t, "d1"));
  lim.finish(id3, day, 1000, 0, t, "d1");
  hit = lim.admit(id3, day, t, "d2");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->limit, "tokens_per_day");
  EXPECT_EQ(hit->retry_after_s, 86400 - (22 * 3600 + 13 * 60 + 20));
  const int64_t tomorrow = t + hit->retry_after_s;
  EXPECT_FALSE(lim.admit(id3, day, tomorrow, "d3"));
  lim.finish(id3, day, 10, 0.02, tomorrow, "d3");
  hit = lim.admit(id3, day, tomorrow + 5, "d4");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->limit, "dollars_per_day");
  EXPECT_FALSE(lim.admit(id3, day, tomorrow + 86400, "d5"));
  Limits month;
  month.dollars_per_month = 0.05;
  month.tokens_per_month = 1 << 20;
  lim.finish(id3 + 1, month, 10, 0.06, t, "m1");
  hit = lim.admit(id3 + 1, month, t, "m2");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->limit, "dollars_per_month");
  EXPECT_EQ(hit->retry_after_s, 1701388800 - t);  // 2023-12-01
  EXPECT_FALSE(lim.admit(id3 + 1, month, 1701388800, "m3"));
}

TEST(GatewayLimits, LocalCounters) {
  LocalCounters c;
  check_limiter(c, 1);
}

int free_port() {
  // Bind port 0 through a tiny socket to learn a free port.
  FILE* p = popen(
      "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
      "print(s.getsockname()[1])'",
      "r");
  int port = 0;
  if (p) {
    if (std::fscanf(p, "%d", &port) != 1) port = 0;
    pclose(p);
  }
  return port;
}

TEST(GatewayLimits, RedisCountersSharedByTwoClients) {
  if (std::system("command -v redis-server > /dev/null 2>&1") != 0)
    GTEST_SKIP() << "redis-server is not installed";
  const int port = free_port();
  ASSERT_GT(port, 0);
  const std::string pidfile = temp_path("redis.pid");
  const std::string cmd = "redis-server --port " + std::to_string(port) +
                          " --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --pidfile " +
                          pidfile + " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string url = "redis://127.0.0.1:" + std::to_string(port);
  std::unique_ptr<RedisCounters> c1;
  for (int i = 0; i < 50 && !c1; i++) {
    try {
      c1 = std::make_unique<RedisCounters>(url);
    } catch (const Error&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ASSERT_TRUE(c1);
  RedisCounters c2(url);
  EXPECT_EQ(c1->add("x", 2, 60), 2);
  EXPECT_EQ(c2.add("x", 3, 60), 5);
  EXPECT_EQ(c1->get("x"), 5);
  EXPECT_EQ(c1->get("missing"), 0);
  check_limiter(c2, 77);

  // A slot whose holder stops renewing its lease (a crashed gateway) comes free by itself;
  // one that is renewed stays taken.
  EXPECT_TRUE(c1->acquire("slots:x", "dead", 2, 300));
  EXPECT_TRUE(c2.acquire("slots:x", "alive", 2, 300));
  EXPECT_FALSE(c1->acquire("slots:x", "third", 2, 300));
  for (int i = 0; i < 4; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    c2.renew({{"slots:x", "alive"}}, 300);
  }
  EXPECT_TRUE(c1->acquire("slots:x", "third", 2, 300));  // "dead" expired, "alive" did not
  EXPECT_FALSE(c1->acquire("slots:x", "fourth", 2, 300));
  c2.release("slots:x", "alive");
  EXPECT_TRUE(c1->acquire("slots:x", "fourth", 2, 300));
  c2.renew({{"slots:x", "alive"}}, 300);  // a released slot is not brought back
  EXPECT_FALSE(c1->acquire("slots:x", "fifth", 2, 300));
  std::system(("kill $(cat " + pidfile + ") 2>/dev/null; rm -f " + pidfile).c_str());
}

}  // namespace
}  // namespace pocket::gateway
