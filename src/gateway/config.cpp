#include "gateway/config.h"

#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "util/error.h"

namespace pocket::gateway {

namespace {

struct Ctx {
  std::string file;
  [[noreturn]] void bad(const toml::node& n, const std::string& key, const std::string& msg) const {
    fail(file, ":", n.source().begin.line, ": key '", key, "' ", msg);
  }
  std::string string(const toml::node& n, const std::string& key) const {
    if (auto v = n.value_exact<std::string>()) return *v;
    bad(n, key, "must be a string");
  }
  int64_t integer(const toml::node& n, const std::string& key, int64_t lo, int64_t hi) const {
    auto v = n.value_exact<int64_t>();
    if (!v) bad(n, key, "must be an integer");
    if (*v < lo || *v > hi) bad(n, key, str("must be in [", lo, ", ", hi, "], got ", *v));
    return *v;
  }
  double number(const toml::node& n, const std::string& key, double lo) const {
    double d;
    if (auto v = n.value_exact<double>())
      d = *v;
    else if (auto i = n.value_exact<int64_t>())
      d = double(*i);
    else
      bad(n, key, "must be a number");
    if (d < lo) bad(n, key, str("must be >= ", lo, ", got ", d));
    return d;
  }
  bool boolean(const toml::node& n, const std::string& key) const {
    if (auto v = n.value_exact<bool>()) return *v;
    bad(n, key, "must be true or false");
  }
  std::vector<std::string> strings(const toml::node& n, const std::string& key) const {
    const auto* arr = n.as_array();
    if (!arr) bad(n, key, "must be an array of strings");
    std::vector<std::string> out;
    for (const auto& e : *arr) out.push_back(string(e, key));
    return out;
  }
  const toml::table& table(const toml::node& n, const std::string& key) const {
    if (const auto* t = n.as_table()) return *t;
    bad(n, key, "must be a table");
  }
};

void parse_limits(const Ctx& c, const toml::table& t, Limits& l) {
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (key == "requests_per_minute")
      l.requests_per_minute = c.integer(v, key, 0, INT64_MAX);
    else if (key == "tokens_per_minute")
      l.tokens_per_minute = c.integer(v, key, 0, INT64_MAX);
    else if (key == "concurrent")
      l.concurrent = c.integer(v, key, 0, INT64_MAX);
    else if (key == "tokens_per_day")
      l.tokens_per_day = c.integer(v, key, 0, INT64_MAX);
    else if (key == "tokens_per_month")
      l.tokens_per_month = c.integer(v, key, 0, INT64_MAX);
    else if (key == "dollars_per_day")
      l.dollars_per_day = c.number(v, key, 0);
    else if (key == "dollars_per_month")
      l.dollars_per_month = c.number(v, key, 0);
    else
      c.bad(v, "limits." + key, "is unknown");
  }
}

void parse_prices(const Ctx& c, const toml::table& t, Prices& p) {
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (key == "electricity_per_kwh")
      p.electricity_per_kwh = c.number(v, key, 0);
    else if (key == "pue")
      p.pue = c.number(v, key, 1);
    else if (key == "hardware_per_hour")
      p.hardware_per_hour = c.number(v, key, 0);
    else if (key == "busy_watts")
      p.busy_watts = c.number(v, key, 0);
    else if (key == "idle_watts" || key == "rapl")
      // Energy is measured by the backend (its engine time, token share of every batch) and
      // priced here; idle draw is caused by no request, so it belongs in hardware_per_hour.
      c.bad(v, key,
            "was removed: the backend measures each request's engine time; put idle power "
            "costs into hardware_per_hour");
    else if (key == "cloud_input_per_1m")
      p.cloud_input_per_1m = c.number(v, key, 0);
    else if (key == "cloud_cached_per_1m")
      p.cloud_cached_per_1m = c.number(v, key, 0);
    else if (key == "cloud_output_per_1m")
      p.cloud_output_per_1m = c.number(v, key, 0);
    else
      c.bad(v, "prices." + key, "is unknown");
  }
}

BackendConfig parse_backend(const Ctx& c, const toml::table& t,
                            const std::vector<std::string>& pool_models) {
  BackendConfig b;
  b.models = pool_models;
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (key == "url") {
      b.url = c.string(v, key);
      if (b.url.rfind("http://", 0) != 0) c.bad(v, key, "must start with http://");
      while (!b.url.empty() && b.url.back() == '/') b.url.pop_back();
    } else if (key == "models")
      b.models = c.strings(v, key);
    else if (key == "weight") {
      b.weight = c.number(v, key, 0);
      if (b.weight <= 0) c.bad(v, key, "must be > 0");
    } else
      c.bad(v, "backends." + key, "is unknown");
  }
  if (b.url.empty())
    fail(c.file, ":", t.source().begin.line, ": key 'url' is missing in a backend");
  if (b.models.empty())
    fail(c.file, ":", t.source().begin.line, ": key 'models' is missing (backend ", b.url, ")");
  return b;
}

}  // namespace

void parse_listen(const std::string& s, std::string& host, int& port) {
  const auto colon = s.rfind(':');
  std::string p = s;
  if (colon != std::string::npos) {
    if (colon > 0) host = s.substr(0, colon);
    p = s.substr(colon + 1);
  }
  try {
    size_t used = 0;
    port = std::stoi(p, &used);
    if (used != p.size() || port < 0 || port > 65535) throw std::invalid_argument(p);
  } catch (const std::exception&) {
    fail("invalid listen address '", s, "' (expected host:port)");
  }
}

GatewayConfig parse_config(const std::string& text, const std::string& name) {
  Ctx c{name};
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    fail(name, ":", e.source().begin.line, ": ", e.description());
  }
  GatewayConfig g;
  for (const auto& [k, v] : root) {
    const std::string key(k.str());
    if (key == "listen") {
      try {
        parse_listen(c.string(v, key), g.host, g.port);
      } catch (const Error& e) {
        c.bad(v, key, e.what());
      }
    } else if (key == "admin_key")
      g.admin_key = c.string(v, key);
    else if (key == "access_log")
      g.access_log = c.string(v, key);
    else if (key == "log_prompts")
      g.log_prompts = c.boolean(v, key);
    else if (key == "retries")
      g.retries = int(c.integer(v, key, 0, 16));
    else if (key == "http_threads")
      g.http_threads = int(c.integer(v, key, 1, 4096));
    else if (key == "upstream_timeout_s")
      g.upstream_timeout_s = c.integer(v, key, 1, 86400);
    else if (key == "database") {
      for (const auto& [dk, dv] : c.table(v, key)) {
        const std::string k2(dk.str());
        if (k2 == "path")
          g.db_path = c.string(dv, "database.path");
        else
          c.bad(dv, "database." + k2, "is unknown");
      }
    } else if (key == "redis") {
      for (const auto& [rk, rv] : c.table(v, key)) {
        const std::string k2(rk.str());
        if (k2 == "url") {
          g.redis_url = c.string(rv, "redis.url");
          if (!g.redis_url.empty() && g.redis_url.rfind("redis://", 0) != 0)
            c.bad(rv, "redis.url", "must start with redis://");
        } else if (k2 == "slot_lease_ms")
          g.slot_lease_ms = c.integer(rv, "redis.slot_lease_ms", 100, 3600000);
        else
          c.bad(rv, "redis." + k2, "is unknown");
      }
    } else if (key == "health") {
      for (const auto& [hk, hv] : c.table(v, key)) {
        const std::string k2(hk.str());
        if (k2 == "interval_ms")
          g.health_interval_ms = int(c.integer(hv, "health.interval_ms", 10, 3600000));
        else if (k2 == "max_failures")
          g.max_failures = int(c.integer(hv, "health.max_failures", 1, 1000));
        else if (k2 == "eject_ms")
          g.eject_ms = int(c.integer(hv, "health.eject_ms", 10, 3600000));
        else
          c.bad(hv, "health." + k2, "is unknown");
      }
    } else if (key == "prices")
      parse_prices(c, c.table(v, key), g.prices);
    else if (key == "limits")
      parse_limits(c, c.table(v, key), g.default_limits);
    else if (key == "pools") {
      const auto* arr = v.as_array();
      if (!arr) c.bad(v, key, "must be an array of tables ([[pools]])");
      for (const auto& pn : *arr) {
        const auto& pt = c.table(pn, key);
        PoolConfig pool;
        std::vector<std::string> models;
        for (const auto& [pk, pv] : pt)
          if (pk.str() == "models") models = c.strings(pv, "pools.models");
        for (const auto& [pk, pv] : pt) {
          const std::string k2(pk.str());
          if (k2 == "name")
            pool.name = c.string(pv, "pools.name");
          else if (k2 == "models") {
          } else if (k2 == "backends") {
            const auto* barr = pv.as_array();
            if (!barr)
              c.bad(pv, "pools.backends", "must be an array of tables ([[pools.backends]])");
            for (const auto& bn : *barr)
              pool.backends.push_back(parse_backend(c, c.table(bn, "pools.backends"), models));
          } else
            c.bad(pv, "pools." + k2, "is unknown");
        }
        if (pool.backends.empty())
          fail(name, ":", pt.source().begin.line,
               ": key 'pools.backends' is missing (a pool needs backends)");
        g.pools.push_back(std::move(pool));
      }
    } else
      c.bad(v, key, "is unknown");
  }
  if (g.pools.empty())
    fail(name, ": key 'pools' is missing: at least one [[pools]] with [[pools.backends]]");
  return g;
}

GatewayConfig load_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail("cannot read gateway config '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), path);
}

}  // namespace pocket::gateway
