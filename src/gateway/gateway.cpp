#include "gateway/gateway.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "gateway/db.h"
#include "gateway/front.h"
#include "gateway/limits.h"
#include "gateway/upstream.h"
#include "server/peer_socket.h"
#include "util/error.h"

namespace pocket::gateway {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

Cost cost_of(const Prices& p, double energy_j, double busy_s, int64_t prompt, int64_t cached,
             int64_t completion) {
  Cost c;
  c.energy_j = energy_j;
  c.local =
      energy_j / 3.6e6 * p.electricity_per_kwh * p.pue + p.hardware_per_hour * busy_s / 3600.0;
  c.cloud = (double(prompt - cached) * p.cloud_input_per_1m +
             double(cached) * p.cloud_cached_per_1m + double(completion) * p.cloud_output_per_1m) /
            1e6;
  return c;
}

namespace {

struct ApiError {
  int status;
  std::string message, type, code;
  int64_t retry_after = 0;
};

json error_json(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", nullptr},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  if (e.retry_after > 0) res.set_header("Retry-After", std::to_string(e.retry_after));
  res.set_content(error_json(e).dump(), "application/json");
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Backend {
  std::string url, pool;
  std::vector<std::string> models;
  double weight = 1;
  std::atomic<int> outstanding{0};
  std::atomic<int> consecutive_failures{0};
  std::atomic<int64_t> ejected_until_ms{0};
  std::atomic<bool> healthy{true};
  std::atomic<int64_t> requests{0}, failures{0};
  std::unique_ptr<UpstreamPool> upstream;  // non-streaming requests

  bool serves(const std::string& m) const {
    return std::find(models.begin(), models.end(), m) != models.end();
  }
  bool available(int64_t now) const { return healthy && now >= ejected_until_ms; }
  void succeeded() { consecutive_failures = 0; }
  void failed(int max_failures, int eject_ms) {
    failures++;
    if (++consecutive_failures >= max_failures) {
      ejected_until_ms = now_ms() + eject_ms;
      consecutive_failures = 0;
    }
  }
};

// What the worker thread of a streaming request shares with the response writer.
struct Upstream {
  std::mutex mu;
  std::condition_variable cv;
  std::string pending;
  int status = 0;
  bool got_headers = false, done = false, error = false;
  std::atomic<bool> cancel{false};
};

class Metrics {
 public:
  void add(std::string_view series, double v) { add({{series, v}}); }
  // Several series under one lock (a request adds ~9).
  void add(std::initializer_list<std::pair<std::string_view, double>> items) {
    std::lock_guard lock(mu_);
    for (const auto& [series, v] : items) {
      if (auto it = values_.find(series); it != values_.end())
        it->second += v;
      else
        values_.emplace(std::string(series), v);
    }
  }
  std::string render() {
    std::lock_guard lock(mu_);
    std::string out;
    std::string last_name;
    for (const auto& [k, v] : values_) {
      const std::string name = k.substr(0, k.find('{'));
      if (name != last_name) out += "# TYPE " + name + " counter\n", last_name = name;
      out += k + " " + str(v) + "\n";
    }
    return out;
  }

 private:
  std::mutex mu_;
  std::map<std::string, double, std::less<>> values_;
};

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    o += c;
  }
  return o;
}

json totals_json(const Totals& t) {
  const double tokens = double(t.tokens());
  return {{"requests", t.requests},
          {"prompt_tokens", t.prompt_tokens},
          {"cached_tokens", t.cached_tokens},
          {"completion_tokens", t.completion_tokens},
          {"total_tokens", t.tokens()},
          {"energy_j", t.energy_j},
          {"cost_local", t.cost_local},
          {"cost_cloud", t.cost_cloud},
          {"saving", t.cost_cloud - t.cost_local},
          {"local_per_1m_tokens", tokens > 0 ? t.cost_local * 1e6 / tokens : 0.0},
          {"cloud_per_1m_tokens", tokens > 0 ? t.cost_cloud * 1e6 / tokens : 0.0}};
}

}  // namespace

// One proxied request, from admission to its ledger row.
struct Call {
  KeyInfo key;
  std::string model, endpoint, prompt;
  bool stream = false, client_usage = false;
  Clock::time_point t0 = Clock::now();
  int64_t ts_ms = now_ms();
  int64_t ts_s = std::time(nullptr);
  Backend* backend = nullptr;
  int outstanding_at_start = 1;
  std::string holder;  // of its concurrency slot: unique per request over all gateways
  int64_t prompt_tokens = 0, cached_tokens = 0, completion_tokens = 0;
  Cost cost;
  std::atomic<bool> finished{false};
};

struct Gateway::State {
  GatewayConfig cfg;
  FrontServer http{FrontServer::Options{}};
  int port = 0;
  std::unique_ptr<Db> db;
  std::unique_ptr<Counters> counters;
  std::unique_ptr<Limiter> limiter;
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<std::string> models;
  Metrics metrics;
  std::string instance_id;  // random, names this process's concurrency slots
  std::atomic<int64_t> next_call{0};
  std::mutex slots_mu;
  std::unordered_map<std::string, std::string> held_slots;  // holder -> slots name (Redis)
  std::atomic<int> inflight{0};

  std::mutex keys_mu;
  std::unordered_map<std::string, KeyInfo> keys_by_hash;
  std::atomic<int64_t> keys_loaded_ms{0};
  std::mutex reload_mu;

  std::mutex usage_mu, flush_mu;
  std::condition_variable usage_cv;
  std::vector<UsageRow> usage_queue;

  std::mutex log_mu;
  FILE* log = nullptr;

  std::atomic<bool> stopping{false};
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  std::thread health_thread, writer_thread, lease_thread, watch_thread;

  // Non-streaming requests waiting for their backend: a client that goes away closes the
  // upstream connection, which cancels the generation in `pocket serve`.
  struct Watch {
    int fd = -1;           // the client's socket (our HTTP server knows it)
    int upstream_fd = -1;  // the connection to the backend in use
    bool cancelled = false;
  };
  std::mutex watch_mu;
  std::unordered_map<int64_t, Watch> watches;
  std::atomic<int64_t> next_watch{0};

  void reload_keys();
  std::optional<KeyInfo> authenticate(const httplib::Request& req, httplib::Response& res);
  bool admin(const httplib::Request& req, httplib::Response& res);
  Backend* pick(const std::string& model, const std::set<Backend*>& tried);
  bool admit(Call& call, httplib::Response& res);
  void proxy(const httplib::Request& req, httplib::Response& res, const std::string& endpoint);
  void proxy_get(const httplib::Request& req, httplib::Response& res, const std::string& model);
  bool try_plain(const std::shared_ptr<Call>& call, Backend* b, const std::string& body,
                 httplib::Response& res);
  int try_stream(const std::shared_ptr<Call>& call, Backend* b, const std::string& body,
                 httplib::Response& res);
  void take_usage(Call& c, nlohmann::ordered_json& usage);
  void finish(Call& c, int status);
  void record(UsageRow row);
  void flush();
  void access_log(const json& line);
  void health_loop();
  void writer_loop();
  void lease_loop();
  void watch_loop();
  void check_health();
  void seed_limits();
  void routes();
};

void Gateway::State::reload_keys() {
  auto keys = db->list_keys();
  std::lock_guard lock(keys_mu);
  keys_by_hash.clear();
  for (auto& k : keys) keys_by_hash[k.hash] = std::move(k);
  keys_loaded_ms = now_ms();
}

std::optional<KeyInfo> Gateway::State::authenticate(const httplib::Request& req,
                                                    httplib::Response& res) {
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) != 0) {
    send_error(res, {401, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                     "invalid_request_error", "missing_api_key"});
    return std::nullopt;
  }
  const std::string hash = sha256_hex(std::string_view(auth).substr(7));
  std::optional<KeyInfo> found;
  for (int pass = 0; pass < 2 && !found; pass++) {
    int64_t loaded;
    {
      std::lock_guard lock(keys_mu);
      auto it = keys_by_hash.find(hash);
      if (it != keys_by_hash.end() && equal_ct(it->second.hash, hash)) found = it->second;
      loaded = keys_loaded_ms;
    }
    if (found || pass == 1) break;
    // Unknown: maybe made by `pocket keys create` or another gateway since the last
    // load. Reload, at most every 200 ms (unknown keys wait for it).
    const int64_t wait = 200 - (now_ms() - loaded);
    if (wait > 0) std::this_thread::sleep_for(std::chrono::milliseconds(wait));
    std::lock_guard lock(reload_mu);
    if (now_ms() - keys_loaded_ms >= 200) reload_keys();
  }
  if (!found) {
    send_error(res,
               {401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"});
    return std::nullopt;
  }
  if (found->revoked) {
    send_error(res,
               {401, "This API key has been revoked.", "invalid_request_error", "key_revoked"});
    return std::nullopt;
  }
  if (!found->enabled) {
    send_error(res, {403, "This API key is disabled.", "permission_error", "key_disabled"});
    return std::nullopt;
  }
  if (found->expires_at > 0 && std::time(nullptr) >= found->expires_at) {
    send_error(res, {401, "This API key has expired.", "invalid_request_error", "key_expired"});
    return std::nullopt;
  }
  return found;
}

bool Gateway::State::admin(const httplib::Request& req, httplib::Response& res) {
  if (cfg.admin_key.empty()) {
    send_error(res, {403, "the admin API is disabled (no admin_key in the config)",
                     "permission_error", "admin_disabled"});
    return false;
  }
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) != 0 ||
      !equal_ct(sha256_hex(auth.substr(7)), sha256_hex(cfg.admin_key))) {
    send_error(res, {401, "Incorrect admin key.", "invalid_request_error", "invalid_admin_key"});
    return false;
  }
  return true;
}

Backend* Gateway::State::pick(const std::string& model, const std::set<Backend*>& tried) {
  const int64_t now = now_ms();
  Backend* best = nullptr;
  double best_score = 0;
  for (int relaxed = 0; relaxed < 2 && !best; relaxed++) {
    for (auto& b : backends) {
      if (!b->serves(model) || tried.count(b.get())) continue;
      // Second pass: every backend is unhealthy or ejected; try them anyway.
      if (!relaxed && !b->available(now)) continue;
      const double score = double(b->outstanding.load() + 1) / b->weight;
      if (!best || score < best_score) best = b.get(), best_score = score;
    }
  }
  return best;
}

void Gateway::State::take_usage(Call& c, nlohmann::ordered_json& usage) {
  c.prompt_tokens = usage.value("prompt_tokens", int64_t(0));
  c.completion_tokens = usage.value("completion_tokens", int64_t(0));
  if (usage.contains("prompt_tokens_details") && usage["prompt_tokens_details"].is_object())
    c.cached_tokens = usage["prompt_tokens_details"].value("cached_tokens", int64_t(0));
  // Energy: what the backend measured for this request (counters, when it has them), else
  // busy watts over the engine time it reports (its token share of every batch it was in).
  // A backend that reports neither: busy watts over the latency, shared with the requests
  // outstanding on it.
  double busy_s, energy;
  if (usage.contains("engine_time_s") && usage["engine_time_s"].is_number()) {
    busy_s = usage["engine_time_s"].get<double>();
    energy = usage.contains("energy_j") && usage["energy_j"].is_number()
                 ? usage["energy_j"].get<double>()
                 : cfg.prices.busy_watts * busy_s;
  } else {
    const int now_out = c.backend ? c.backend->outstanding.load() : 1;
    busy_s = seconds_since(c.t0) /
             std::max(1.0, 0.5 * double(c.outstanding_at_start + std::max(now_out, 1)));
    energy = cfg.prices.busy_watts * busy_s;
  }
  c.cost =
      cost_of(cfg.prices, energy, busy_s, c.prompt_tokens, c.cached_tokens, c.completion_tokens);
  usage["cost"] = {{"local_usd", c.cost.local},
                   {"cloud_usd", c.cost.cloud},
                   {"saving_usd", c.cost.cloud - c.cost.local},
                   {"energy_j", c.cost.energy_j}};
}

void Gateway::State::finish(Call& c, int status) {
  if (c.finished.exchange(true)) return;
  inflight--;
  if (c.key.limits.concurrent > 0 && counters->shared()) {
    std::lock_guard lock(slots_mu);
    held_slots.erase(c.holder);
  }
  const double latency_ms = seconds_since(c.t0) * 1e3;
  const int64_t tokens = c.prompt_tokens + c.completion_tokens;
  try {
    limiter->finish(c.key.id, c.key.limits, tokens, c.cost.local, std::time(nullptr), c.holder);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pocket gateway: limits: %s\n", e.what());
  }
  const std::string backend = c.backend ? c.backend->url : "";
  UsageRow row;
  row.ts_ms = c.ts_ms;
  row.key_id = c.key.id;
  row.model = c.model;
  row.backend = backend;
  row.endpoint = c.endpoint;
  row.prompt_tokens = c.prompt_tokens;
  row.cached_tokens = c.cached_tokens;
  row.completion_tokens = c.completion_tokens;
  row.latency_ms = latency_ms;
  row.status = status;
  row.stream = c.stream;
  row.energy_j = c.cost.energy_j;
  row.cost_local = c.cost.local;
  row.cost_cloud = c.cost.cloud;
  row.prompt = c.prompt;
  record(std::move(row));
  // Labels by concatenation: str() builds an ostringstream (a locale) per call.
  const std::string model = esc(c.model);
  metrics.add({{"pocket_gateway_requests_total{endpoint=\"" + c.endpoint + "\",status=\"" +
                    std::to_string(status) + "\"}",
                1},
               {"pocket_gateway_request_seconds_sum", latency_ms / 1e3},
               {"pocket_gateway_request_seconds_count", 1},
               {"pocket_gateway_tokens_total{kind=\"prompt\",model=\"" + model + "\"}",
                double(c.prompt_tokens)},
               {"pocket_gateway_tokens_total{kind=\"cached\",model=\"" + model + "\"}",
                double(c.cached_tokens)},
               {"pocket_gateway_tokens_total{kind=\"completion\",model=\"" + model + "\"}",
                double(c.completion_tokens)},
               {"pocket_gateway_energy_joules_total", c.cost.energy_j},
               {"pocket_gateway_cost_local_dollars_total", c.cost.local},
               {"pocket_gateway_cost_cloud_dollars_total", c.cost.cloud}});
  if (!log) return;  // (the line's JSON is not built for nobody)
  access_log({{"ts_ms", c.ts_ms},
              {"key_id", c.key.id},
              {"path", c.endpoint},
              {"model", c.model},
              {"backend", backend},
              {"status", status},
              {"stream", c.stream},
              {"latency_ms", latency_ms},
              {"prompt_tokens", c.prompt_tokens},
              {"cached_tokens", c.cached_tokens},
              {"completion_tokens", c.completion_tokens},
              {"cost_local", c.cost.local},
              {"cost_cloud", c.cost.cloud}});
}

void Gateway::State::record(UsageRow row) {
  std::lock_guard lock(usage_mu);
  usage_queue.push_back(std::move(row));
  if (usage_queue.size() >= 256) usage_cv.notify_one();
}

void Gateway::State::flush() {
  std::lock_guard flock(flush_mu);
  std::vector<UsageRow> rows;
  {
    std::lock_guard lock(usage_mu);
    rows.swap(usage_queue);
  }
  try {
    db->insert_usage(rows);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pocket gateway: usage ledger: %s\n", e.what());
  }
}

void Gateway::State::access_log(const json& line) {
  if (!log) return;
  const std::string s = line.dump() + "\n";
  std::lock_guard lock(log_mu);
  std::fwrite(s.data(), 1, s.size(), log);
  std::fflush(log);
}

void Gateway::State::writer_loop() {
  while (!stopping) {
    {
      std::unique_lock lock(usage_mu);
      usage_cv.wait_for(lock, std::chrono::milliseconds(100),
                        [&] { return stopping || usage_queue.size() >= 256; });
    }
    flush();
  }
  flush();
}

void Gateway::State::check_health() {
  for (auto& b : backends) {
    httplib::Client c(b->url);
    c.set_connection_timeout(0, 500000);
    c.set_read_timeout(2, 0);
    auto r = c.Get("/health");
    const bool ok = r && r->status == 200;
    if (ok != b->healthy.load())
      std::fprintf(stderr, "pocket gateway: backend %s is %s\n", b->url.c_str(),
                   ok ? "healthy" : "unhealthy");
    b->healthy = ok;
  }
}

void Gateway::State::health_loop() {
  auto last_keys = Clock::now();
  while (!stopping) {
    {
      std::unique_lock lock(stop_mu);
      stop_cv.wait_for(lock, std::chrono::milliseconds(cfg.health_interval_ms),
                       [&] { return stopping.load(); });
    }
    if (stopping) break;
    check_health();
    if (seconds_since(last_keys) > 2) {
      try {
        reload_keys();  // revocations and updates from `pocket keys`
      } catch (const std::exception& e) {
        std::fprintf(stderr, "pocket gateway: keys: %s\n", e.what());
      }
      last_keys = Clock::now();
    }
  }
}

// Every 50 ms: the client sockets of non-streaming requests waiting for their backend are
// polled; a closed one cuts its upstream connection.
void Gateway::State::watch_loop() {
  while (!stopping) {
    {
      std::unique_lock lock(stop_mu);
      stop_cv.wait_for(lock, std::chrono::milliseconds(50), [&] { return stopping.load(); });
    }
    std::lock_guard lock(watch_mu);
    for (auto& [id, w] : watches) {
      if (w.cancelled || w.fd < 0) continue;
      if (server::peer_closed(w.fd)) {
        w.cancelled = true;
        if (w.upstream_fd >= 0) ::shutdown(w.upstream_fd, SHUT_RDWR);
      }
    }
  }
}

// Renews the leases of the concurrency slots this process holds in Redis, three times per
// lease, so they outlive slow requests but not a crashed process.
void Gateway::State::lease_loop() {
  while (!stopping) {
    {
      std::unique_lock lock(stop_mu);
      stop_cv.wait_for(lock, std::chrono::milliseconds(cfg.slot_lease_ms / 3),
                       [&] { return stopping.load(); });
    }
    if (stopping) break;
    std::vector<std::pair<std::string, std::string>> held;
    {
      std::lock_guard lock(slots_mu);
      for (const auto& [holder, name] : held_slots) held.emplace_back(name, holder);
    }
    try {
      counters->renew(held, cfg.slot_lease_ms);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "pocket gateway: slot leases: %s\n", e.what());
    }
  }
}

// Without Redis the counters live here: rebuild them from the ledger, so a
// restart forgets no usage.
void Gateway::State::seed_limits() {
  if (counters->shared()) return;
  const int64_t t = std::time(nullptr);
  const Windows w = windows_at(t);
  const int64_t minute0 = (t - t % 60) * 1000, day0 = (t - t % 86400) * 1000,
                month0 = (t - (86400 * 31 - w.to_next_month)) * 1000;
  // Month start: the window id changes at the UTC month boundary; find it by stepping back days.
  int64_t m0 = t - t % 86400;
  while (windows_at(m0 - 1).month == w.month) m0 -= 86400;
  (void)month0;
  for (const auto& k : db->list_keys()) {
    const Totals m = db->totals(k.id, minute0), d = db->totals(k.id, day0),
                 mo = db->totals(k.id, m0 * 1000);
    limiter->seed(k.id, m.admitted, m.tokens(), d.tokens(), mo.tokens(), d.cost_local,
                  mo.cost_local, t);
  }
}

// Limits: false when refused (answered 429 or 503, recorded); else the call is in flight.
bool Gateway::State::admit(Call& call, httplib::Response& res) {
  call.holder = instance_id + ":" + std::to_string(next_call++);
  std::optional<LimitHit> hit;
  try {
    hit = limiter->admit(call.key.id, call.key.limits, call.ts_s, call.holder, cfg.slot_lease_ms);
  } catch (const std::exception& e) {
    send_error(res, {503, str("limit store unavailable: ", e.what()), "server_error",
                     "limits_unavailable", 1});
    return false;
  }
  if (hit) {
    const bool budget = hit->limit.find("_per_day") != std::string::npos ||
                        hit->limit.find("_per_month") != std::string::npos;
    send_error(res, {429, hit->message, budget ? "insufficient_quota" : "rate_limit_exceeded",
                     hit->limit, hit->retry_after_s});
    metrics.add(str("pocket_gateway_limit_rejections_total{limit=\"", hit->limit, "\"}"), 1);
    UsageRow row;
    row.ts_ms = call.ts_ms;
    row.key_id = call.key.id;
    row.model = call.model;
    row.endpoint = call.endpoint;
    row.status = 429;
    record(std::move(row));
    metrics.add(
        str("pocket_gateway_requests_total{endpoint=\"", call.endpoint, "\",status=\"429\"}"), 1);
    return false;
  }
  inflight++;
  if (call.key.limits.concurrent > 0 && counters->shared()) {
    std::lock_guard lock(slots_mu);
    held_slots[call.holder] = Limiter::slots_name(call.key.id);
  }

  return true;
}

void Gateway::State::proxy(const httplib::Request& req, httplib::Response& res,
                           const std::string& endpoint) {
  auto key = authenticate(req, res);
  if (!key) return;
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::exception& e) {
    return send_error(res,
                      {400, str("We could not parse the JSON body of your request: ", e.what()),
                       "invalid_request_error", "invalid_json"});
  }
  if (!body.is_object() || !body.contains("model") || !body["model"].is_string())
    return send_error(
        res, {400, "you must provide a model parameter", "invalid_request_error", "missing_model"});
  auto call = std::make_shared<Call>();
  call->key = *key;
  call->endpoint = endpoint;
  call->model = body["model"].get<std::string>();
  if (!key->models.empty() &&
      std::find(key->models.begin(), key->models.end(), call->model) == key->models.end())
    return send_error(res, {403, str("This key may not use the model '", call->model, "'"),
                            "permission_error", "model_not_allowed"});
  if (std::find(models.begin(), models.end(), call->model) == models.end())
    return send_error(res, {404, str("The model '", call->model, "' does not exist"),
                            "invalid_request_error", "model_not_found"});

  if (!admit(*call, res)) return;

  call->stream = body.value("stream", false);
  if (call->stream) {
    call->client_usage = body.contains("stream_options") && body["stream_options"].is_object() &&
                         body["stream_options"].value("include_usage", false);
    body["stream_options"]["include_usage"] = true;  // tokens for the limits and the ledger
  }
  if (cfg.log_prompts)
    call->prompt =
        body.contains("messages") ? body["messages"].dump() : body.value("prompt", json()).dump();
  // Unchanged (not streaming) bodies go upstream as they came: no second serialisation.
  const std::string upstream_body = call->stream ? body.dump() : req.body;

  std::set<Backend*> tried;
  int last_status = 503;
  std::string last_error = "no backend is available for this model";
  for (int attempt = 0; attempt <= cfg.retries; attempt++) {
    Backend* b = pick(call->model, tried);
    if (!b) break;
    tried.insert(b);
    call->backend = b;
    b->requests++;
    call->outstanding_at_start = ++b->outstanding;
    if (!call->stream) {
      if (try_plain(call, b, upstream_body, res)) return;
    } else {
      const int r = try_stream(call, b, upstream_body, res);
      if (r != 0) return;
    }
    last_status = 502;
    last_error = str("backend ", b->url, " failed");
    metrics.add(str("pocket_gateway_retries_total"), 1);
  }
  call->backend = nullptr;
  send_error(res, {last_status, last_error, "server_error", "backend_unavailable", 1});
  finish(*call, last_status);
}

// GET /v1/models/{model}: the backend's own answer, through the same admission, routing,
// retries before any byte, ledger row (no tokens) and metrics as a completion.
void Gateway::State::proxy_get(const httplib::Request& req, httplib::Response& res,
                               const std::string& model) {
  auto key = authenticate(req, res);
  if (!key) return;
  if (std::find(models.begin(), models.end(), model) == models.end() ||
      (!key->models.empty() &&
       std::find(key->models.begin(), key->models.end(), model) == key->models.end()))
    return send_error(res, {404, str("The model '", model, "' does not exist"),
                            "invalid_request_error", "model_not_found"});
  auto call = std::make_shared<Call>();
  call->key = *key;
  call->endpoint = "/v1/models/{model}";
  call->model = model;
  if (!admit(*call, res)) return;
  std::set<Backend*> tried;
  int last_status = 503;
  std::string last_error = "no backend is available for this model";
  for (int attempt = 0; attempt <= cfg.retries; attempt++) {
    Backend* b = pick(model, tried);
    if (!b) break;
    tried.insert(b);
    call->backend = b;
    b->requests++;
    call->outstanding_at_start = ++b->outstanding;
    UpstreamResponse r;
    std::string error;
    const bool ok = b->upstream->get(req.path, r, error);
    b->outstanding--;
    if (!ok || r.status >= 500) {
      b->failed(cfg.max_failures, cfg.eject_ms);
      last_status = 502;
      last_error = str("backend ", b->url, " failed");
      metrics.add("pocket_gateway_retries_total", 1);
      continue;
    }
    b->succeeded();
    res.status = r.status;
    res.set_content(std::move(r.body),
                    r.content_type.empty() ? "application/json" : r.content_type);
    finish(*call, r.status);
    return;
  }
  call->backend = nullptr;
  send_error(res, {last_status, last_error, "server_error", "backend_unavailable", 1});
  finish(*call, last_status);
}

// Non-streaming: one round trip on a pooled keep-alive connection. False: retry elsewhere.
bool Gateway::State::try_plain(const std::shared_ptr<Call>& call, Backend* b,
                               const std::string& body, httplib::Response& res) {
  const int64_t watch_id = next_watch++;
  {
    std::lock_guard lock(watch_mu);
    watches[watch_id] = Watch{FrontServer::current_socket()};
  }
  UpstreamResponse r;
  std::string error;
  const bool ok = b->upstream->post(call->endpoint, body, r, error, [this, watch_id](int fd) {
    std::lock_guard lock(watch_mu);
    Watch& w = watches[watch_id];
    w.upstream_fd = fd;
    return !w.cancelled;
  });
  bool cancelled;
  {
    std::lock_guard lock(watch_mu);
    cancelled = watches[watch_id].cancelled;
    watches.erase(watch_id);
  }
  if (cancelled) {  // the client went away; its upstream request was cut
    b->outstanding--;
    res.status = 499;
    finish(*call, 499);
    return true;
  }
  if (!ok || r.status >= 500) {
    b->outstanding--;
    b->failed(cfg.max_failures, cfg.eject_ms);
    return false;
  }
  b->succeeded();
  res.status = r.status;
  std::string out = std::move(r.body);
  if (r.status == 200) {
    try {
      auto j = nlohmann::ordered_json::parse(out);  // the backend's field order kept
      if (j.contains("usage") && j["usage"].is_object()) {
        take_usage(*call, j["usage"]);
        out = j.dump();
      }
    } catch (const json::exception&) {
    }
  }
  b->outstanding--;
  res.set_content(out, r.content_type.empty() ? "application/json" : r.content_type);
  finish(*call, r.status);
  return true;
}

// Streaming: a worker thread reads the upstream response into `Upstream`; this
// thread waits for the first bytes before answering, so a backend that fails
// before then is retried. 0: retry elsewhere; 1: answered.
int Gateway::State::try_stream(const std::shared_ptr<Call>& call, Backend* b,
                               const std::string& body, httplib::Response& res) {
  auto up = std::make_shared<Upstream>();
  const std::string url = b->url, path = call->endpoint;
  const int64_t timeout = cfg.upstream_timeout_s;
  std::thread([up, url, path, body, timeout] {
    httplib::Client cli(url);
    cli.set_tcp_nodelay(true);
    cli.set_connection_timeout(2, 0);
    cli.set_read_timeout(time_t(timeout), 0);
    httplib::Request r;
    r.method = "POST";
    r.path = path;
    r.body = body;
    r.set_header("Content-Type", "application/json");
    r.set_header("Accept", "text/event-stream");
    r.response_handler = [up](const httplib::Response& resp) {
      std::lock_guard lock(up->mu);
      up->status = resp.status;
      up->got_headers = true;
      up->cv.notify_all();
      return !up->cancel.load();
    };
    r.content_receiver = [up](const char* data, size_t n, uint64_t, uint64_t) {
      std::lock_guard lock(up->mu);
      up->pending.append(data, n);
      up->cv.notify_all();
      return !up->cancel.load();
    };
    httplib::Response resp;
    httplib::Error err = httplib::Error::Success;
    const bool ok = cli.send(r, resp, err);
    std::lock_guard lock(up->mu);
    up->done = true;
    up->error = !ok;
    up->cv.notify_all();
  }).detach();

  int status;
  {
    std::unique_lock lock(up->mu);
    up->cv.wait(lock, [&] { return up->done || (up->got_headers && !up->pending.empty()); });
    if (up->got_headers && up->status != 200 && up->status < 500) {
      up->cv.wait(lock, [&] { return up->done; });  // an error answer: pass it on whole
    }
    status = up->status;
    if (!up->got_headers || status >= 500 || (up->pending.empty() && up->error)) {
      up->cancel = true;
      lock.unlock();
      b->outstanding--;
      b->failed(cfg.max_failures, cfg.eject_ms);
      return 0;
    }
    if (status != 200) {
      b->outstanding--;
      b->succeeded();
      res.status = status;
      res.set_content(up->pending, "application/json");
      lock.unlock();
      finish(*call, status);
      return 1;
    }
  }
  b->succeeded();
  struct Stream {
    std::string buf;
    bool failed = false;
  };
  auto st = std::make_shared<Stream>();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Pocket-Backend", b->url);
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, up, call, st, b](size_t, httplib::DataSink& sink) {
        std::string data;
        bool done;
        {
          std::unique_lock lock(up->mu);
          up->cv.wait_for(lock, std::chrono::milliseconds(200),
                          [&] { return up->done || !up->pending.empty(); });
          data.swap(up->pending);
          done = up->done;
          if (done && up->error) st->failed = true;
        }
        st->buf += data;
        std::string out;
        size_t pos;
        while ((pos = st->buf.find("\n\n")) != std::string::npos) {
          std::string ev = st->buf.substr(0, pos + 2);
          st->buf.erase(0, pos + 2);
          if (ev.rfind("data: {", 0) == 0 && ev.find("\"usage\"") != std::string::npos) {
            try {
              auto j = nlohmann::ordered_json::parse(ev.substr(6));
              if (j.contains("usage") && j["usage"].is_object()) {
                take_usage(*call, j["usage"]);
                if (!call->client_usage) continue;  // the client did not ask for it
                ev = "data: " + j.dump() + "\n\n";
              }
            } catch (const json::exception&) {
            }
          }
          out += ev;
        }
        if (done && !st->buf.empty()) out += std::exchange(st->buf, "");
        if (!out.empty() && !sink.write(out.data(), out.size())) {
          up->cancel = true;  // the client went away: drop the upstream request too
          b->outstanding--;
          finish(*call, 499);
          return false;
        }
        if (done) {
          b->outstanding--;
          if (st->failed) b->failed(cfg.max_failures, cfg.eject_ms);
          finish(*call, st->failed ? 502 : 200);
          sink.done();
        }
        return true;
      },
      [this, up, call, b](bool success) {
        if (!call->finished) {
          up->cancel = true;
          b->outstanding--;
          finish(*call, 499);
        }
      });
  return 1;
}

void Gateway::State::routes() {
  FrontServer::Options front;
  front.threads = cfg.http_threads;
  front.max_body_bytes = 64 << 20;
  http.set_options(front);
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    ApiError e{res.status, str("HTTP ", res.status), "invalid_request_error", ""};
    if (res.status == 404)
      e.message = str("Unknown request URL: ", req.method, " ", req.path), e.code = "unknown_url";
    send_error(res, e);
  });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (req.path == "/v1/chat/completions" || req.path == "/v1/completions")
      return;  // logged with their usage
    metrics.add(str("pocket_gateway_requests_total{endpoint=\"",
                    req.path.rfind("/admin/", 0) == 0 ? "/admin"
                    : req.path == "/v1/models" || req.path == "/health" || req.path == "/metrics" ||
                            req.path == "/v1/usage"
                        ? req.path
                        : "other",
                    "\",status=\"", res.status, "\"}"),
                1);
    if (log)
      access_log({{"ts_ms", now_ms()},
                  {"method", req.method},
                  {"path", req.path},
                  {"status", res.status}});
  });

  http.route("POST", "/v1/chat/completions",
             [this](const httplib::Request& req, httplib::Response& res) {
               proxy(req, res, "/v1/chat/completions");
             });
  http.route("POST", "/v1/completions",
             [this](const httplib::Request& req, httplib::Response& res) {
               proxy(req, res, "/v1/completions");
             });
  http.route("GET", "/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    auto key = authenticate(req, res);
    if (!key) return;
    json data = json::array();
    for (const auto& m : models)
      if (key->models.empty() ||
          std::find(key->models.begin(), key->models.end(), m) != key->models.end())
        data.push_back({{"id", m}, {"object", "model"}, {"created", 0}, {"owned_by", "pocket"}});
    res.set_content(json{{"object", "list"}, {"data", data}}.dump(), "application/json");
  });
  // Retrieve model: proxied to a backend that serves it (auth, limits, ledger row, metrics),
  // the cheapest request that takes the gateway's whole path.
  http.route("GET", R"(/v1/models/(.+))",
             [this](const httplib::Request& req, httplib::Response& res) {
               proxy_get(req, res, req.matches[1]);
             });
  http.route("GET", "/v1/usage", [this](const httplib::Request& req, httplib::Response& res) {
    auto key = authenticate(req, res);
    if (!key) return;
    flush();
    const int64_t t = std::time(nullptr);
    int64_t m0 = t - t % 86400;
    const Windows w = windows_at(t);
    while (windows_at(m0 - 1).month == w.month) m0 -= 86400;
    json j = {{"key_id", key->id},
              {"name", key->name},
              {"limits", key_json(*key)["limits"]},
              {"day", totals_json(db->totals(key->id, (t - t % 86400) * 1000))},
              {"month", totals_json(db->totals(key->id, m0 * 1000))},
              {"total", totals_json(db->totals(key->id, 0))}};
    res.set_content(j.dump(), "application/json");
  });
  http.route("GET", "/health", [this](const httplib::Request&, httplib::Response& res) {
    const int64_t now = now_ms();
    int up = 0;
    for (auto& b : backends) up += b->available(now);
    res.status = up > 0 ? 200 : 503;
    res.set_content(
        json{{"status", up > 0 ? "ok" : "no_backend"}, {"backends_available", up}}.dump(),
        "application/json");
  });
  http.route("GET", "/metrics", [this](const httplib::Request&, httplib::Response& res) {
    std::string out = metrics.render();
    const int64_t now = now_ms();
    out += "# TYPE pocket_gateway_backend_outstanding gauge\n";
    for (auto& b : backends)
      out += str("pocket_gateway_backend_outstanding{backend=\"", b->url, "\"} ",
                 b->outstanding.load(), "\n");
    out += "# TYPE pocket_gateway_backend_available gauge\n";
    for (auto& b : backends)
      out += str("pocket_gateway_backend_available{backend=\"", b->url, "\"} ",
                 int(b->available(now)), "\n");
    out += "# TYPE pocket_gateway_backend_requests_total counter\n";
    for (auto& b : backends)
      out += str("pocket_gateway_backend_requests_total{backend=\"", b->url, "\"} ",
                 b->requests.load(), "\n");
    out += "# TYPE pocket_gateway_backend_failures_total counter\n";
    for (auto& b : backends)
      out += str("pocket_gateway_backend_failures_total{backend=\"", b->url, "\"} ",
                 b->failures.load(), "\n");
    out += str("# TYPE pocket_gateway_inflight gauge\npocket_gateway_inflight ", inflight.load(),
               "\n");
    res.set_content(out, "text/plain; version=0.0.4");
  });

  // Admin API: keys and reports.
  auto admin_json = [this](auto handler) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      if (!admin(req, res)) return;
      try {
        handler(req, res);
      } catch (const json::exception& e) {
        send_error(res, {400, str("invalid request: ", e.what()), "invalid_request_error",
                         "invalid_json"});
      } catch (const Error& e) {
        send_error(res, {400, e.what(), "invalid_request_error", ""});
      }
    };
  };
  http.route("POST", "/admin/keys",
             admin_json([this](const httplib::Request& req, httplib::Response& res) {
               KeyInfo k;
               k.limits = cfg.default_limits;
               apply_key_json(req.body.empty() ? json::object() : json::parse(req.body), k);
               if (k.name.empty()) k.name = "key";
               auto [rec, secret] = db->create_key(k);
               reload_keys();
               json j = key_json(rec);
               j["key"] = secret;
               res.status = 201;
               res.set_content(j.dump(), "application/json");
             }));
  http.route("GET", "/admin/keys",
             admin_json([this](const httplib::Request&, httplib::Response& res) {
               json arr = json::array();
               for (const auto& k : db->list_keys()) arr.push_back(key_json(k));
               res.set_content(json{{"object", "list"}, {"data", arr}}.dump(), "application/json");
             }));
  auto get_id = [this](const httplib::Request& req,
                       httplib::Response& res) -> std::optional<KeyInfo> {
    auto k = db->get_key(std::stoll(req.matches[1]));
    if (!k)
      send_error(res, {404, str("no key with id ", std::string(req.matches[1])),
                       "invalid_request_error", "key_not_found"});
    return k;
  };
  http.route("GET", R"(/admin/keys/(\d+))",
             admin_json([get_id](const httplib::Request& req, httplib::Response& res) {
               if (auto k = get_id(req, res))
                 res.set_content(key_json(*k).dump(), "application/json");
             }));
  auto update = admin_json([this, get_id](const httplib::Request& req, httplib::Response& res) {
    auto k = get_id(req, res);
    if (!k) return;
    if (k->revoked)
      return send_error(res, {409, "the key is revoked", "invalid_request_error", "key_revoked"});
    apply_key_json(json::parse(req.body), *k);
    db->update_key(*k);
    reload_keys();
    res.set_content(key_json(*k).dump(), "application/json");
  });
  http.route("PATCH", R"(/admin/keys/(\d+))", update);
  http.route("POST", R"(/admin/keys/(\d+))", update);
  http.route("DELETE", R"(/admin/keys/(\d+))",
             admin_json([this, get_id](const httplib::Request& req, httplib::Response& res) {
               auto k = get_id(req, res);
               if (!k) return;
               db->revoke_key(k->id);
               reload_keys();
               k->revoked = true;
               k->enabled = false;
               res.set_content(key_json(*k).dump(), "application/json");
             }));
  http.route("GET", "/admin/usage",
             admin_json([this](const httplib::Request& req, httplib::Response& res) {
               flush();
               const std::string by = req.has_param("by") ? req.get_param_value("by") : "key";
               const int64_t key =
                   req.has_param("key") ? std::stoll(req.get_param_value("key")) : -1;
               const int64_t since =
                   req.has_param("since_ms") ? std::stoll(req.get_param_value("since_ms")) : 0;
               res.set_content(json{{"object", "list"},
                                    {"by", by},
                                    {"data", db->report(by, key, since)},
                                    {"total", totals_json(db->totals(key, since))}}
                                   .dump(),
                               "application/json");
             }));
}

Gateway::Gateway(GatewayConfig config) : state_(std::make_unique<State>()) {
  State& s = *state_;
  s.cfg = std::move(config);
  s.db = std::make_unique<Db>(s.cfg.db_path);
  s.counters = make_counters(s.cfg.redis_url);
  s.limiter = std::make_unique<Limiter>(*s.counters);
  std::set<std::string> models;
  for (const auto& p : s.cfg.pools)
    for (const auto& bc : p.backends) {
      auto b = std::make_unique<Backend>();
      b->url = bc.url;
      b->pool = p.name;
      b->models = bc.models;
      b->weight = bc.weight;
      b->upstream = std::make_unique<UpstreamPool>(bc.url, s.cfg.upstream_timeout_s);
      models.insert(bc.models.begin(), bc.models.end());
      s.backends.push_back(std::move(b));
    }
  s.models.assign(models.begin(), models.end());
  s.instance_id = new_api_key().substr(3, 16);
  if (s.cfg.access_log == "-")
    s.log = stderr;
  else if (!s.cfg.access_log.empty()) {
    s.log = std::fopen(s.cfg.access_log.c_str(), "a");
    if (!s.log) fail("cannot open access log '", s.cfg.access_log, "'");
  }
  s.reload_keys();
  s.seed_limits();
}

Gateway::~Gateway() {
  stop();
  State& s = *state_;
  if (s.health_thread.joinable()) s.health_thread.join();
  if (s.writer_thread.joinable()) s.writer_thread.join();
  if (s.lease_thread.joinable()) s.lease_thread.join();
  if (s.watch_thread.joinable()) s.watch_thread.join();
  s.flush();
  if (s.log && s.log != stderr) std::fclose(s.log);
}

void Gateway::run() {
  State& s = *state_;
  s.routes();
  s.check_health();
  const int port = s.http.bind(s.cfg.host, s.cfg.port);
  if (port <= 0) fail("cannot listen on ", s.cfg.host, ":", s.cfg.port);
  s.port = port;
  s.health_thread = std::thread([&s] { s.health_loop(); });
  s.writer_thread = std::thread([&s] { s.writer_loop(); });
  if (s.counters->shared()) s.lease_thread = std::thread([&s] { s.lease_loop(); });
  s.watch_thread = std::thread([&s] { s.watch_loop(); });
  std::fprintf(stderr,
               "pocket gateway: listening on http://%s:%d (%zu backends, %zu models, limits %s)\n",
               s.cfg.host.c_str(), port, s.backends.size(), s.models.size(),
               s.counters->shared() ? "in redis" : "in process");
  s.http.serve();
}

void Gateway::stop() {
  State& s = *state_;
  s.http.stop();
  {
    std::lock_guard lock(s.stop_mu);
    s.stopping = true;
  }
  s.stop_cv.notify_all();
  s.usage_cv.notify_all();
}

int Gateway::port() const {
  return state_->port;
}

}  // namespace pocket::gateway
