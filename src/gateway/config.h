// Gateway configuration (gateway.toml): listen address, backend pools, database,
// optional Redis, prices/power for the cost model, default limits for new keys.
// Errors name the file, line and key: "gateway.toml:12: key 'weight' must be > 0".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pocket::gateway {

// Per-key limits; 0 means unlimited.
struct Limits {
  int64_t requests_per_minute = 0;
  int64_t tokens_per_minute = 0;
  int64_t concurrent = 0;
  int64_t tokens_per_day = 0;
  int64_t tokens_per_month = 0;
  double dollars_per_day = 0;
  double dollars_per_month = 0;
};

struct BackendConfig {
  std::string url;  // http://host:port
  std::vector<std::string> models;
  double weight = 1;
};

struct PoolConfig {
  std::string name;
  std::vector<BackendConfig> backends;
};

struct Prices {
  double electricity_per_kwh = 0.25;  // $ per kWh
  double pue = 1.2;
  double hardware_per_hour = 0.0;  // amortization, $ per busy hour
  // Draw of the machine while the engine runs, used with the engine time the backend
  // reports for each request (its token share of every batch it was in).
  double busy_watts = 200;
  // Cloud reference prices, $ per 1M tokens.
  double cloud_input_per_1m = 0.40;
  double cloud_cached_per_1m = 0.10;
  double cloud_output_per_1m = 1.60;
};

struct GatewayConfig {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string admin_key;
  std::string db_path = "gateway.db";
  std::string redis_url;  // redis://host:port[/db]; empty = in-process limits
  // A concurrency slot in Redis is a lease the holding gateway renews; a gateway that
  // crashes frees its slots when their leases run out.
  int64_t slot_lease_ms = 10000;
  std::string access_log;  // JSON lines; "" = none, "-" = stderr
  bool log_prompts = false;
  int health_interval_ms = 1000;
  int max_failures = 3;  // consecutive failures before a backend is ejected
  int eject_ms = 5000;
  int retries = 2;         // other backends tried when one fails before any byte was sent
  int http_threads = 256;  // connections served at once (threads started as needed)
  int64_t upstream_timeout_s = 600;
  Prices prices;
  Limits default_limits;
  std::vector<PoolConfig> pools;
};

GatewayConfig parse_config(const std::string& text, const std::string& name);
GatewayConfig load_config(const std::string& path);

// "host:port" or ":port" or "port".
void parse_listen(const std::string& s, std::string& host, int& port);

}  // namespace pocket::gateway
