#include "server/metrics.h"

#include <algorithm>
#include <cstdio>

namespace pocket::server {

namespace {
std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}
void header(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}
void sample(std::string& out, const std::string& name, double v) { out += name + " " + number(v) + "\n"; }
}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

void Histogram::observe(double v) {
  const size_t i = size_t(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  counts_[i]++;
  sum_ += v;
  count_++;
}

void Histogram::render(std::string& out, const std::string& name) const {
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); i++) {
    cumulative += counts_[i];
    out += name + "_bucket{le=\"" + number(bounds_[i]) + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{le=\"+Inf\"} " + std::to_string(count_) + "\n";
  sample(out, name + "_sum", sum_);
  out += name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}),
      inter_token_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}) {}

void Metrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  requests_[{endpoint, status}]++;
}
void Metrics::add_tokens(int64_t prompt, int64_t generated) {
  std::lock_guard lock(mutex_);
  prompt_tokens_ += uint64_t(prompt);
  generated_tokens_ += uint64_t(generated);
}
void Metrics::observe_ttft(double s) {
  std::lock_guard lock(mutex_);
  ttft_.observe(s);
}
void Metrics::observe_inter_token(double s) {
  std::lock_guard lock(mutex_);
  inter_token_.observe(s);
}
void Metrics::count_cancelled() {
  std::lock_guard lock(mutex_);
  cancelled_++;
}
void Metrics::count_step(int64_t batch_tokens) {
  std::lock_guard lock(mutex_);
  steps_++;
  step_tokens_ += uint64_t(batch_tokens);
}
void Metrics::set_engine_state(int64_t queue_depth, int64_t active, uint64_t kv_bytes, uint64_t kv_capacity,
                               uint64_t recurrent_bytes) {
  std::lock_guard lock(mutex_);
  queue_depth_ = queue_depth;
  active_ = active;
  kv_bytes_ = kv_bytes;
  kv_capacity_ = kv_capacity;
  recurrent_bytes_ = recurrent_bytes;
}
void Metrics::set_loading(bool loading) {
  std::lock_guard lock(mutex_);
  loading_ = loading;
}

std::string Metrics::render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  header(out, "pocket_requests_total", "counter", "HTTP requests by endpoint and status code.");
  for (const auto& [key, n] : requests_)
    out += "pocket_requests_total{endpoint=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(n) + "\n";
  header(out, "pocket_prompt_tokens_total", "counter", "Prompt tokens processed.");
  sample(out, "pocket_prompt_tokens_total", double(prompt_tokens_));
  header(out, "pocket_generated_tokens_total", "counter", "Tokens generated.");
  sample(out, "pocket_generated_tokens_total", double(generated_tokens_));
  header(out, "pocket_cancelled_requests_total", "counter", "Generations cancelled by a closed connection.");
  sample(out, "pocket_cancelled_requests_total", double(cancelled_));
  header(out, "pocket_engine_steps_total", "counter", "Forward calls made by the engine.");
  sample(out, "pocket_engine_steps_total", double(steps_));
  header(out, "pocket_engine_step_tokens_total", "counter", "Tokens in all forward calls (decode and prefill).");
  sample(out, "pocket_engine_step_tokens_total", double(step_tokens_));
  header(out, "pocket_time_to_first_token_seconds", "histogram", "Time from arrival to the first generated token.");
  ttft_.render(out, "pocket_time_to_first_token_seconds");
  header(out, "pocket_inter_token_latency_seconds", "histogram", "Time between consecutive generated tokens of a request.");
  inter_token_.render(out, "pocket_inter_token_latency_seconds");
  header(out, "pocket_queue_depth", "gauge", "Requests waiting for a sequence slot.");
  sample(out, "pocket_queue_depth", double(queue_depth_));
  header(out, "pocket_active_sequences", "gauge", "Sequences being prefilled or decoded.");
  sample(out, "pocket_active_sequences", double(active_));
  header(out, "pocket_kv_cache_bytes", "gauge", "KV cache page memory in use.");
  sample(out, "pocket_kv_cache_bytes", double(kv_bytes_));
  header(out, "pocket_kv_cache_allocated_bytes", "gauge", "KV cache page memory allocated (in use or free).");
  sample(out, "pocket_kv_cache_allocated_bytes", double(kv_capacity_));
  header(out, "pocket_recurrent_state_bytes", "gauge", "Conv and recurrent state memory of the active sequences.");
  sample(out, "pocket_recurrent_state_bytes", double(recurrent_bytes_));
  header(out, "pocket_model_loading", "gauge", "1 while the model is loading.");
  sample(out, "pocket_model_loading", loading_ ? 1 : 0);
  return out;
}

}  // namespace pocket::server
