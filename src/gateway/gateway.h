// `pocket gateway`: an OpenAI-compatible front for one or many `pocket serve`
// backends. API keys (hashed in SQLite), routing (least outstanding requests over
// weights, health checks, passive ejection, retries before the first byte),
// streaming pass-through, per-key limits (in-process or Redis), a usage ledger with
// the local/cloud cost of every request, Prometheus metrics and a JSON access log.
#pragma once

#include <memory>

#include "gateway/config.h"

namespace pocket::gateway {

class Gateway {
 public:
  explicit Gateway(GatewayConfig config);
  ~Gateway();
  // Binds, prints "pocket gateway: listening on http://HOST:PORT" to stderr and serves until
  // stop().
  void run();
  void stop();
  int port() const;

  struct State;

 private:
  std::unique_ptr<State> state_;
};

// Energy and money of one request on a local backend.
struct Cost {
  double energy_j = 0, local = 0, cloud = 0;
};
Cost cost_of(const Prices& p, double energy_j, double busy_s, int64_t prompt, int64_t cached,
             int64_t completion);

}  // namespace pocket::gateway
