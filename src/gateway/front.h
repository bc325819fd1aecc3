// The gateway's HTTP/1.1 server (in place of cpp-httplib's). Per request cpp-httplib's
// server (Debian 0.11) polls before every read and write, writes headers and body apart
// and asks the kernel for both socket addresses: ~7 polls, 3 sends, 2-3 reads and 2
// address calls per proxied request, and on loopback every send wakes the other side.
// Here a connection's thread blocks in recv() (no poll), an answer leaves in one send(),
// and the addresses are read once per connection. Handlers keep cpp-httplib's Request and
// Response types (and its chunked content providers for streaming).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

namespace pocket::gateway {

class FrontServer {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  struct Options {
    int threads = 256;  // connections served at once, one thread each; more wait for one
    size_t max_header_bytes = 64 << 10;  // request line + headers (431 beyond)
    size_t max_body_bytes = 64 << 20;    // 413 beyond
    int idle_timeout_s = 5;  // an idle keep-alive connection (or a stalled request) is closed
    int write_timeout_s = 30;
  };

  explicit FrontServer(Options options) { set_options(options); }
  ~FrontServer();
  FrontServer(const FrontServer&) = delete;
  FrontServer& operator=(const FrontServer&) = delete;

  void set_options(Options options);  // before serve()

  // An exact path, or (a pattern with '(') a regex matched against the whole path, its
  // groups in req.matches.
  void route(const std::string& method, const std::string& pattern, Handler handler);
  // Gives a body to answers of status >= 400 that have none (unknown routes: 404).
  void set_error_handler(Handler handler) { error_handler_ = std::move(handler); }
  // Called after every answer.
  void set_logger(Handler logger) { logger_ = std::move(logger); }

  // Port bound (port 0: any free one), or -1.
  int bind(const std::string& host, int port);
  // Serves until stop(); returns when every connection is closed.
  void serve();
  // Stops accepting, closes idle connections; requests in progress are answered first.
  void stop();

  // The client socket of the request the calling thread handles (-1 outside a handler), so a
  // handler waiting on a backend can notice the client going away.
  static int current_socket();

 private:
  struct Route {
    std::string method, pattern;
    bool is_regex = false;
    std::regex re;
    Handler handler;
  };
  void worker();
  void serve_connection(int fd);
  void dispatch(httplib::Request& req, httplib::Response& res);
  bool write_answer(int fd, const httplib::Request& req, httplib::Response& res, bool close);

  Options options_;
  std::vector<Route> routes_;
  Handler error_handler_, logger_;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> waiting_;  // accepted, not yet taken by a thread
  std::set<int> open_;       // connections being served
  std::vector<std::thread> threads_;
  size_t idle_threads_ = 0;  // waiting for a connection
  std::string keep_alive_header_;
};

}  // namespace pocket::gateway
