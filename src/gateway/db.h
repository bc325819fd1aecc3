// SQLite store of the gateway (WAL): API keys (only their SHA-256) and the usage
// ledger. One connection behind a mutex; the gateway writes usage rows in batches.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway/config.h"

struct sqlite3;

namespace pocket::gateway {

std::string sha256_hex(std::string_view data);
// Constant-time comparison (length is not secret).
bool equal_ct(std::string_view a, std::string_view b);
// A fresh random key: "pk-" + 48 hex digits from a CSPRNG.
std::string new_api_key();
int64_t now_ms();

struct KeyInfo {
  int64_t id = 0;
  std::string name;
  std::string prefix;               // first characters of the key, for display
  std::string hash;                 // SHA-256 hex of the whole key
  std::vector<std::string> models;  // empty = every model
  Limits limits;
  int64_t expires_at = 0;  // unix seconds; 0 = never
  bool enabled = true;
  bool revoked = false;
  int64_t created_at = 0;
};
nlohmann::json key_json(const KeyInfo& k);
// Applies the fields present in j (name, models, limits{...}, expires_at, enabled).
void apply_key_json(const nlohmann::json& j, KeyInfo& k);

struct UsageRow {
  int64_t ts_ms = 0;
  int64_t key_id = 0;
  std::string model, backend, endpoint;
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  double latency_ms = 0;
  int status = 0;
  bool stream = false;
  double energy_j = 0, cost_local = 0, cost_cloud = 0;
  std::string prompt;  // only with log_prompts
};

struct Totals {
  int64_t requests = 0, admitted = 0, prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  double energy_j = 0, cost_local = 0, cost_cloud = 0;
  int64_t tokens() const { return prompt_tokens + completion_tokens; }
};

class Db {
 public:
  explicit Db(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Returns the record and the key itself (shown once).
  std::pair<KeyInfo, std::string> create_key(KeyInfo k);
  std::vector<KeyInfo> list_keys();
  std::optional<KeyInfo> get_key(int64_t id);
  void update_key(const KeyInfo& k);
  bool revoke_key(int64_t id);

  void insert_usage(const std::vector<UsageRow>& rows);
  // key_id < 0: every key. Rows with ts_ms >= since_ms and < until_ms; only rows with status 200
  // count tokens.
  Totals totals(int64_t key_id, int64_t since_ms, int64_t until_ms = INT64_MAX);
  // Groups by "key", "model", "day" or "backend".
  nlohmann::json report(const std::string& by, int64_t key_id, int64_t since_ms);
  int64_t count_usage_rows();

 private:
  void exec(const char* sql);
  KeyInfo read_key(void* stmt);
  sqlite3* db_ = nullptr;
  std::mutex mu_;
};

}  // namespace pocket::gateway
