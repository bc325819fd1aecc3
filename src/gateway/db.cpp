#include "gateway/db.h"

#include <chrono>
#include <cstring>
#include <thread>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sqlite3.h>

#include "util/error.h"

namespace pocket::gateway {

using nlohmann::json;

std::string sha256_hex(std::string_view data) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) out += hex[c >> 4], out += hex[c & 15];
  return out;
}

bool equal_ct(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string new_api_key() {
  unsigned char r[24];
  if (RAND_bytes(r, sizeof r) != 1) fail("RAND_bytes failed");
  static const char* hex = "0123456789abcdef";
  std::string k = "pk-";
  for (unsigned char c : r) k += hex[c >> 4], k += hex[c & 15];
  return k;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json key_json(const KeyInfo& k) {
  const Limits& l = k.limits;
  return {{"id", k.id},
          {"name", k.name},
          {"prefix", k.prefix},
          {"models", k.models},
          {"limits",
           {{"requests_per_minute", l.requests_per_minute},
            {"tokens_per_minute", l.tokens_per_minute},
            {"concurrent", l.concurrent},
            {"tokens_per_day", l.tokens_per_day},
            {"tokens_per_month", l.tokens_per_month},
            {"dollars_per_day", l.dollars_per_day},
            {"dollars_per_month", l.dollars_per_month}}},
          {"expires_at", k.expires_at},
          {"enabled", k.enabled},
          {"revoked", k.revoked},
          {"created_at", k.created_at}};
}

void apply_key_json(const json& j, KeyInfo& k) {
  if (!j.is_object()) fail("key settings must be a JSON object");
  for (const auto& [name, v] : j.items()) {
    if (name == "name")
      k.name = v.get<std::string>();
    else if (name == "models")
      k.models = v.get<std::vector<std::string>>();
    else if (name == "expires_at")
      k.expires_at = v.get<int64_t>();
    else if (name == "enabled")
      k.enabled = v.get<bool>();
    else if (name == "limits") {
      if (!v.is_object()) fail("'limits' must be an object");
      Limits& l = k.limits;
      for (const auto& [ln, lv] : v.items()) {
        if (ln == "requests_per_minute")
          l.requests_per_minute = lv.get<int64_t>();
        else if (ln == "tokens_per_minute")
          l.tokens_per_minute = lv.get<int64_t>();
        else if (ln == "concurrent")
          l.concurrent = lv.get<int64_t>();
        else if (ln == "tokens_per_day")
          l.tokens_per_day = lv.get<int64_t>();
        else if (ln == "tokens_per_month")
          l.tokens_per_month = lv.get<int64_t>();
        else if (ln == "dollars_per_day")
          l.dollars_per_day = lv.get<double>();
        else if (ln == "dollars_per_month")
          l.dollars_per_month = lv.get<double>();
        else
          fail("unknown limit '", ln, "'");
      }
    } else if (name == "id" || name == "prefix" || name == "created_at" || name == "revoked") {
    } else
      fail("unknown key field '", name, "'");
  }
}

namespace {

struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
      fail("sqlite: ", sqlite3_errmsg(db), " in: ", sql);
  }
  ~Stmt() { sqlite3_finalize(s); }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s, i, v);
    return *this;
  }
  Stmt& bind(int i, double v) {
    sqlite3_bind_double(s, i, v);
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail("sqlite: ", sqlite3_errmsg(sqlite3_db_handle(s)));
  }
  int64_t i(int c) { return sqlite3_column_int64(s, c); }
  double d(int c) { return sqlite3_column_double(s, c); }
  std::string t(int c) {
    const auto* p = sqlite3_column_text(s, c);
    return p ? std::string(reinterpret_cast<const char*>(p)) : std::string();
  }
};

const char* kKeyCols =
    "id, name, prefix, hash, models, rpm, tpm, concurrent, tokens_day, tokens_month, dollars_day, "
    "dollars_month, "
    "expires_at, enabled, revoked, created_at";

}  // namespace

Db::Db(const std::string& path) {
  if (sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    fail("cannot open database '", path, "': ", msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  // Two gateways opening a new file at once: switching it to WAL or creating the tables can
  // answer SQLITE_BUSY without waiting on the busy handler (SQLite's rule against lock-upgrade
  // deadlocks), so the set-up statements retry for up to ~5 s.
  const auto setup = [&](const char* sql) {
    for (int attempt = 0;; attempt++) {
      char* err = nullptr;
      const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
      const std::string msg = err ? err : "?";
      sqlite3_free(err);
      if (rc == SQLITE_OK) return;
      if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || attempt >= 500) {
        sqlite3_close(db_);
        db_ = nullptr;
        fail("sqlite: ", msg, " in: ", sql, " (database '", path, "')");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  };
  setup("PRAGMA journal_mode=WAL");
  setup("PRAGMA synchronous=NORMAL");
  setup(
      "CREATE TABLE IF NOT EXISTS keys (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, "
      "prefix TEXT NOT NULL,"
      " hash TEXT NOT NULL UNIQUE, models TEXT NOT NULL DEFAULT '[]', rpm INTEGER DEFAULT 0, tpm "
      "INTEGER DEFAULT 0,"
      " concurrent INTEGER DEFAULT 0, tokens_day INTEGER DEFAULT 0, tokens_month INTEGER DEFAULT 0,"
      " dollars_day REAL DEFAULT 0, dollars_month REAL DEFAULT 0, expires_at INTEGER DEFAULT 0,"
      " enabled INTEGER DEFAULT 1, revoked INTEGER DEFAULT 0, created_at INTEGER NOT NULL)");
  setup(
      "CREATE TABLE IF NOT EXISTS usage (id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT "
      "NULL, key_id INTEGER,"
      " model TEXT, backend TEXT, endpoint TEXT, prompt_tokens INTEGER, cached_tokens INTEGER, "
      "completion_tokens INTEGER,"
      " latency_ms REAL, status INTEGER, stream INTEGER, energy_j REAL, cost_local REAL, "
      "cost_cloud REAL, prompt TEXT)");
  setup("CREATE INDEX IF NOT EXISTS usage_key_ts ON usage(key_id, ts_ms)");
}

Db::~Db() {
  sqlite3_close(db_);
}

void Db::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string msg = err ? err : "?";
    sqlite3_free(err);
    fail("sqlite: ", msg, " in: ", sql);
  }
}

KeyInfo Db::read_key(void* p) {
  Stmt& s = *static_cast<Stmt*>(p);
  KeyInfo k;
  k.id = s.i(0);
  k.name = s.t(1);
  k.prefix = s.t(2);
  k.hash = s.t(3);
  k.models = json::parse(s.t(4)).get<std::vector<std::string>>();
  k.limits.requests_per_minute = s.i(5);
  k.limits.tokens_per_minute = s.i(6);
  k.limits.concurrent = s.i(7);
  k.limits.tokens_per_day = s.i(8);
  k.limits.tokens_per_month = s.i(9);
  k.limits.dollars_per_day = s.d(10);
  k.limits.dollars_per_month = s.d(11);
  k.expires_at = s.i(12);
  k.enabled = s.i(13) != 0;
  k.revoked = s.i(14) != 0;
  k.created_at = s.i(15);
  return k;
}

std::pair<KeyInfo, std::string> Db::create_key(KeyInfo k) {
  const std::string key = new_api_key();
  k.hash = sha256_hex(key);
  k.prefix = key.substr(0, 10);
  k.created_at = now_ms() / 1000;
  k.revoked = false;
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "INSERT INTO keys (name, prefix, hash, models, rpm, tpm, concurrent, tokens_day, "
         "tokens_month, dollars_day,"
         " dollars_month, expires_at, enabled, revoked, created_at) VALUES "
         "(?,?,?,?,?,?,?,?,?,?,?,?,?,0,?)");
  s.bind(1, k.name).bind(2, k.prefix).bind(3, k.hash).bind(4, json(k.models).dump());
  s.bind(5, k.limits.requests_per_minute)
      .bind(6, k.limits.tokens_per_minute)
      .bind(7, k.limits.concurrent);
  s.bind(8, k.limits.tokens_per_day)
      .bind(9, k.limits.tokens_per_month)
      .bind(10, k.limits.dollars_per_day);
  s.bind(11, k.limits.dollars_per_month)
      .bind(12, k.expires_at)
      .bind(13, int64_t(k.enabled))
      .bind(14, k.created_at);
  s.step();
  k.id = sqlite3_last_insert_rowid(db_);
  return {k, key};
}

std::vector<KeyInfo> Db::list_keys() {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kKeyCols + " FROM keys ORDER BY id").c_str());
  std::vector<KeyInfo> out;
  while (s.step()) out.push_back(read_key(&s));
  return out;
}

std::optional<KeyInfo> Db::get_key(int64_t id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kKeyCols + " FROM keys WHERE id = ?").c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_key(&s);
}

void Db::update_key(const KeyInfo& k) {
  std::lock_guard lock(mu_);
  Stmt s(db_,
         "UPDATE keys SET name=?, models=?, rpm=?, tpm=?, concurrent=?, tokens_day=?, "
         "tokens_month=?, dollars_day=?,"
         " dollars_month=?, expires_at=?, enabled=? WHERE id=?");
  s.bind(1, k.name).bind(2, json(k.models).dump()).bind(3, k.limits.requests_per_minute);
  s.bind(4, k.limits.tokens_per_minute)
      .bind(5, k.limits.concurrent)
      .bind(6, k.limits.tokens_per_day);
  s.bind(7, k.limits.tokens_per_month)
      .bind(8, k.limits.dollars_per_day)
      .bind(9, k.limits.dollars_per_month);
  s.bind(10, k.expires_at).bind(11, int64_t(k.enabled)).bind(12, k.id);
  s.step();
}

bool Db::revoke_key(int64_t id) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE keys SET revoked=1, enabled=0 WHERE id=?");
  s.bind(1, id);
  s.step();
  return sqlite3_changes(db_) > 0;
}

void Db::insert_usage(const std::vector<UsageRow>& rows) {
  if (rows.empty()) return;
  std::lock_guard lock(mu_);
  exec("BEGIN");
  try {
    Stmt s(db_,
           "INSERT INTO usage (ts_ms, key_id, model, backend, endpoint, prompt_tokens, "
           "cached_tokens, completion_tokens,"
           " latency_ms, status, stream, energy_j, cost_local, cost_cloud, prompt) VALUES "
           "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    for (const auto& r : rows) {
      sqlite3_reset(s.s);
      s.bind(1, r.ts_ms).bind(2, r.key_id).bind(3, r.model).bind(4, r.backend).bind(5, r.endpoint);
      s.bind(6, r.prompt_tokens)
          .bind(7, r.cached_tokens)
          .bind(8, r.completion_tokens)
          .bind(9, r.latency_ms);
      s.bind(10, int64_t(r.status))
          .bind(11, int64_t(r.stream))
          .bind(12, r.energy_j)
          .bind(13, r.cost_local);
      s.bind(14, r.cost_cloud);
      if (r.prompt.empty())
        sqlite3_bind_null(s.s, 15);
      else
        s.bind(15, r.prompt);
      s.step();
    }
  } catch (...) {
    exec("ROLLBACK");
    throw;
  }
  exec("COMMIT");
}

Totals Db::totals(int64_t key_id, int64_t since_ms, int64_t until_ms) {
  std::lock_guard lock(mu_);
  Stmt s(
      db_,
      "SELECT count(*), coalesce(sum(prompt_tokens),0), coalesce(sum(cached_tokens),0),"
      " coalesce(sum(completion_tokens),0), coalesce(sum(energy_j),0), coalesce(sum(cost_local),0),"
      " coalesce(sum(cost_cloud),0), coalesce(sum(status != 429),0) FROM usage"
      " WHERE (?1 < 0 OR key_id = ?1) AND ts_ms >= ?2 AND "
      "ts_ms < ?3");
  s.bind(1, key_id).bind(2, since_ms).bind(3, until_ms);
  Totals t;
  if (s.step()) {
    t.requests = s.i(0);
    t.prompt_tokens = s.i(1);
    t.cached_tokens = s.i(2);
    t.completion_tokens = s.i(3);
    t.energy_j = s.d(4);
    t.cost_local = s.d(5);
    t.cost_cloud = s.d(6);
    t.admitted = s.i(7);  // not refused with 429
  }
  return t;
}

json Db::report(const std::string& by, int64_t key_id, int64_t since_ms) {
  std::string group;
  if (by == "key")
    group = "key_id";
  else if (by == "model")
    group = "model";
  else if (by == "backend")
    group = "backend";
  else if (by == "day")
    group = "date(ts_ms / 1000, 'unixepoch')";
  else
    fail("unknown report grouping '", by, "' (key, model, backend or day)");
  std::lock_guard lock(mu_);
  Stmt s(
      db_,
      ("SELECT " + group +
       ", count(*), sum(prompt_tokens), sum(cached_tokens), sum(completion_tokens), sum(energy_j),"
       " sum(cost_local), sum(cost_cloud), sum(status = 200) FROM usage WHERE (?1 < 0 OR key_id = "
       "?1) AND ts_ms >= ?2"
       " GROUP BY 1 ORDER BY 1")
          .c_str());
  s.bind(1, key_id).bind(2, since_ms);
  json rows = json::array();
  while (s.step()) {
    const int64_t tokens = s.i(2) + s.i(4);
    const double local = s.d(6), cloud = s.d(7);
    json r = {{by, by == "key" ? json(s.i(0)) : json(s.t(0))},
              {"requests", s.i(1)},
              {"ok_requests", s.i(8)},
              {"prompt_tokens", s.i(2)},
              {"cached_tokens", s.i(3)},
              {"completion_tokens", s.i(4)},
              {"energy_j", s.d(5)},
              {"cost_local", local},
              {"cost_cloud", cloud},
              {"saving", cloud - local},
              {"local_per_1m_tokens", tokens ? local * 1e6 / double(tokens) : 0.0},
              {"cloud_per_1m_tokens", tokens ? cloud * 1e6 / double(tokens) : 0.0}};
    rows.push_back(std::move(r));
  }
  return rows;
}

int64_t Db::count_usage_rows() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT count(*) FROM usage");
  return s.step() ? s.i(0) : 0;
}

}  // namespace pocket::gateway
