// Non-streaming requests to one backend over pooled keep-alive HTTP/1.1 connections:
// each request goes out in one write and its answer is read without a poll before every
// read. On loopback every extra send or read costs a wake-up of the other side, and
// cpp-httplib's client spends several per request (headers and body written apart, a
// select before each read); this path is the gateway's hottest.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace pocket::gateway {

struct UpstreamResponse {
  int status = 0;
  std::string content_type, body;
};

class UpstreamPool {
 public:
  // url: http://host:port (no path); an answer must come within timeout_s.
  UpstreamPool(const std::string& url, int64_t timeout_s);
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  // POSTs a JSON body and reads the whole answer (Content-Length, chunked, or up to the
  // close). A pooled connection the backend closed while idle is replaced by a new one.
  // `using_fd` is told each connection it uses (and -1 before it is closed), so that a
  // watcher may shutdown() it to cut the request; it returns false when the request was cut
  // meanwhile (no new attempt then). False: no answer (error says why).
  bool post(const std::string& path, const std::string& body, UpstreamResponse& out,
            std::string& error, const std::function<bool(int)>& using_fd = nullptr) {
    return send("POST", path, &body, out, error, using_fd);
  }
  // The same for a GET (no body).
  bool get(const std::string& path, UpstreamResponse& out, std::string& error) {
    return send("GET", path, nullptr, out, error, nullptr);
  }

  const std::string& host() const { return host_; }
  int port() const { return port_; }

 private:
  bool send(const char* method, const std::string& path, const std::string* body,
            UpstreamResponse& out, std::string& error, const std::function<bool(int)>& using_fd);
  int take_idle();
  int connect_new(std::string& error);
  void give(int fd);
  // 1: answered; 0: the connection died before any byte of an answer; -1: failed later.
  int exchange(int fd, const std::string& request, UpstreamResponse& out, bool& keep,
               std::string& error);

  std::string host_;
  int port_ = 80;
  int64_t timeout_s_;
  std::mutex mu_;
  std::vector<int> idle_;
};

}  // namespace pocket::gateway
