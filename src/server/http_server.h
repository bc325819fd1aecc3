// `pocket serve`: the OpenAI-compatible HTTP front end (see docs/server.md).
//
// HTTP threads validate and tokenize a request, enqueue it on the Engine and
// then only read the request's output channel, formatting OpenAI JSON or SSE
// chunks. The model is loaded on a background thread: /health answers 503
// until it is ready.
#pragma once

#include <memory>
#include <string>

#include "server/settings.h"

namespace pocket::server {

class HttpServer {
 public:
  explicit HttpServer(ServerSettings settings);
  ~HttpServer();
  // Binds host:port (throws pocket::Error when it cannot), starts loading the
  // model and serves until stop(). Throws when the model fails to load.
  void run();
  // Port actually bound (useful with port 0), valid once listening.
  int port() const;
  void stop();

 struct State;  // defined in http_server.cpp

 private:
  std::unique_ptr<State> state_;
};

}  // namespace pocket::server
