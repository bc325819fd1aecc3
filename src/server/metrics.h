// Server metrics in the Prometheus text exposition format (GET /metrics).
// Written by the HTTP threads and the engine thread; every update takes a
// short lock (a few per request and per token, nothing on the model's path).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pocket::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  // Appends the _bucket/_sum/_count lines of metric `name`.
  void render(std::string& out, const std::string& name) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();
  void count_request(const std::string& endpoint, int status);
  void add_tokens(int64_t prompt, int64_t generated);
  void observe_ttft(double seconds);
  void observe_inter_token(double seconds);
  void count_cancelled();
  void count_step(int64_t batch_tokens);
  // Engine-owned gauges, set once per step.
  void set_engine_state(int64_t queue_depth, int64_t active, uint64_t kv_bytes, uint64_t kv_capacity,
                        uint64_t recurrent_bytes);
  void set_loading(bool loading);

  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0, cancelled_ = 0, steps_ = 0, step_tokens_ = 0;
  Histogram ttft_, inter_token_;
  int64_t queue_depth_ = 0, active_ = 0;
  uint64_t kv_bytes_ = 0, kv_capacity_ = 0, recurrent_bytes_ = 0;
  bool loading_ = true;
};

}  // namespace pocket::server
