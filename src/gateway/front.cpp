#include "gateway/front.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strings.h>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "server/peer_socket.h"

namespace pocket::gateway {

namespace {

thread_local int current_client_socket = -1;

const char* reason_phrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 499:
      return "Client Closed Request";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return status < 400 ? "OK" : "Error";
  }
}

bool send_all(int fd, const char* data, size_t size) {
  size_t off = 0;
  while (off < size) {
    const ssize_t n = ::send(fd, data + off, size - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

// Reads more bytes into buf; false on close, error or timeout.
bool read_more(int fd, std::string& buf) {
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf.append(chunk, size_t(n));
    return true;
  }
}

std::string address_text(const sockaddr_storage& a, int& port) {
  char host[INET6_ADDRSTRLEN] = "";
  if (a.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a);
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (a.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  }
  return host;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses "METHOD TARGET HTTP/1.x" and the header lines of head (without the final CRLF
// CRLF). False: malformed.
bool parse_head(std::string_view head, httplib::Request& req) {
  size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  const size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return false;
  req.method = std::string(line.substr(0, sp1));
  req.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  req.version = std::string(line.substr(sp2 + 1));
  if (req.version != "HTTP/1.1" && req.version != "HTTP/1.0") return false;
  if (req.method.empty() || req.target.empty() || req.target[0] != '/') return false;
  const size_t q = req.target.find('?');
  req.path = httplib::detail::decode_url(req.target.substr(0, q), false);
  if (q != std::string::npos)
    httplib::detail::parse_query_text(req.target.substr(q + 1), req.params);
  while (eol != std::string_view::npos) {
    const size_t start = eol + 2;
    eol = head.find("\r\n", start);
    const std::string_view h =
        head.substr(start, eol == std::string_view::npos ? head.npos : eol - start);
    if (h.empty()) continue;
    const size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    req.headers.emplace(std::string(h.substr(0, colon)), std::string(trim(h.substr(colon + 1))));
  }
  return true;
}

// Decodes a chunked body starting at buf[pos]. 1: complete (pos moves past it), 0: more
// bytes needed, -1: malformed or over max bytes.
int dechunk(const std::string& buf, size_t& pos, std::string& out, size_t max) {
  out.clear();
  size_t p = pos;
  for (;;) {
    const size_t eol = buf.find("\r\n", p);
    if (eol == std::string::npos) return buf.size() - p > 32 ? -1 : 0;  // a size line is short
    char* end = nullptr;
    const unsigned long long size = std::strtoull(buf.c_str() + p, &end, 16);
    if (end == buf.c_str() + p) return -1;
    if (size > max || out.size() + size > max) return -1;
    p = eol + 2;
    if (size == 0) {  // trailers (ignored) up to an empty line
      for (;;) {
        const size_t e = buf.find("\r\n", p);
        if (e == std::string::npos) return 0;
        const bool empty = e == p;
        p = e + 2;
        if (empty) break;
      }
      pos = p;
      return 1;
    }
    if (buf.size() < p + size + 2) return 0;
    out.append(buf, p, size);
    p += size + 2;
  }
}

}  // namespace

void FrontServer::set_options(Options options) {
  options_ = options;
  keep_alive_header_ = "Keep-Alive: timeout=" + std::to_string(options_.idle_timeout_s) + "\r\n";
}

FrontServer::~FrontServer() {
  stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

int FrontServer::current_socket() {
  return current_client_socket;
}

void FrontServer::route(const std::string& method, const std::string& pattern, Handler handler) {
  Route r;
  r.method = method;
  r.pattern = pattern;
  r.is_regex = pattern.find('(') != std::string::npos;
  if (r.is_regex) r.re = std::regex(pattern);
  r.handler = std::move(handler);
  routes_.push_back(std::move(r));
}

int FrontServer::bind(const std::string& host, int port) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, a->ai_addr, a->ai_addrlen) != 0 || ::listen(fd, 1024) != 0) {
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return -1;
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int bound = -1;
  address_text(addr, bound);
  listen_fd_ = fd;
  return bound;
}

void FrontServer::serve() {
  while (!stopping_) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (stopping_) break;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // out of descriptors
        continue;
      }
      break;
    }
    std::lock_guard lock(mu_);
    if (stopping_) {
      ::close(fd);
      break;
    }
    waiting_.push_back(fd);
    // Threads are started as connections need them (up to options_.threads): an idle
    // keep-alive connection holds one until its client closes it or it times out.
    if (idle_threads_ < waiting_.size() && threads_.size() < size_t(std::max(1, options_.threads)))
      threads_.emplace_back([this] { worker(); });
    else
      cv_.notify_one();
  }
  stop();
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void FrontServer::stop() {
  std::lock_guard lock(mu_);
  if (stopping_.exchange(true)) return;
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  for (int fd : waiting_) ::close(fd);
  waiting_.clear();
  // Wakes the threads waiting for a request (recv() returns 0); a request being handled is
  // still answered, and its connection closed after.
  for (int fd : open_) ::shutdown(fd, SHUT_RD);
  cv_.notify_all();
}

void FrontServer::worker() {
  for (;;) {
    int fd;
    {
      std::unique_lock lock(mu_);
      idle_threads_++;
      cv_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
      idle_threads_--;
      if (waiting_.empty()) return;  // stopping
      fd = waiting_.front();
      waiting_.pop_front();
    }
    serve_connection(fd);
    ::close(fd);
  }
}

void FrontServer::dispatch(httplib::Request& req, httplib::Response& res) {
  bool found = false;
  for (const auto& r : routes_) {
    if (r.method != req.method) continue;
    if (r.is_regex ? std::regex_match(req.path, req.matches, r.re) : r.pattern == req.path) {
      found = true;
      try {
        r.handler(req, res);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "pocket gateway: %s %s: %s\n", req.method.c_str(), req.path.c_str(),
                     e.what());
        res = httplib::Response();
        res.status = 500;
      }
      break;
    }
  }
  if (!found) res.status = 404;
  if (res.status == -1) res.status = 200;
  if (res.status >= 400 && res.body.empty() && !res.content_provider_ && error_handler_)
    error_handler_(req, res);
}

void FrontServer::serve_connection(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const timeval rcv{options_.idle_timeout_s, 0}, snd{options_.write_timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof rcv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof snd);
  sockaddr_storage peer{}, self{};
  socklen_t plen = sizeof peer, slen = sizeof self;
  getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &plen);
  getsockname(fd, reinterpret_cast<sockaddr*>(&self), &slen);
  int remote_port = -1, local_port = -1;
  const std::string remote_addr = address_text(peer, remote_port);
  const std::string local_addr = address_text(self, local_port);

  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    open_.insert(fd);
  }
  struct Forget {
    FrontServer* self;
    int fd;
    ~Forget() {
      std::lock_guard lock(self->mu_);
      self->open_.erase(fd);
    }
  } forget{this, fd};

  std::string buf;
  auto answer_error = [&](int status) {
    httplib::Request req;
    httplib::Response res;
    res.status = status;
    if (error_handler_) error_handler_(req, res);
    write_answer(fd, req, res, true);
  };
  for (;;) {
    // The head: up to an empty line.
    size_t head_end = buf.find("\r\n\r\n");
    if (head_end == std::string::npos) {
      size_t scanned = 0;
      bool ok = true;
      while ((head_end = buf.find("\r\n\r\n", scanned)) == std::string::npos) {
        if (buf.size() > options_.max_header_bytes) break;
        scanned = buf.size() >= 3 ? buf.size() - 3 : 0;
        if (!(ok = read_more(fd, buf))) break;
      }
      if (!ok) return;  // closed, timed out or stopping
      if (head_end == std::string::npos) return answer_error(431);
    }
    if (head_end > options_.max_header_bytes) return answer_error(431);
    httplib::Request req;
    if (!parse_head(std::string_view(buf).substr(0, head_end), req)) return answer_error(400);
    req.remote_addr = remote_addr;
    req.remote_port = remote_port;
    req.local_addr = local_addr;
    req.local_port = local_port;
    size_t pos = head_end + 4;

    // The body.
    const std::string te = req.get_header_value("Transfer-Encoding");
    const bool expect_continue =
        strcasecmp(req.get_header_value("Expect").c_str(), "100-continue") == 0;
    bool continued = false;
    auto need_more = [&] {
      if (expect_continue && !continued) {
        continued = true;
        static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (!send_all(fd, kContinue, sizeof kContinue - 1)) return false;
      }
      return read_more(fd, buf);
    };
    if (!te.empty()) {
      if (strcasecmp(te.c_str(), "chunked") != 0) return answer_error(501);
      for (;;) {
        const int r = dechunk(buf, pos, req.body, options_.max_body_bytes);
        if (r == 1) break;
        if (r < 0) return answer_error(400);
        if (!need_more()) return;
      }
    } else if (req.has_header("Content-Length")) {
      const std::string cl = req.get_header_value("Content-Length");
      char* end = nullptr;
      const unsigned long long length = std::strtoull(cl.c_str(), &end, 10);
      if (cl.empty() || *end != '\0') return answer_error(400);
      if (length > options_.max_body_bytes) return answer_error(413);
      while (buf.size() - pos < length)
        if (!need_more()) return;
      req.body.assign(buf, pos, size_t(length));
      pos += size_t(length);
    }
    buf.erase(0, pos);

    const std::string connection = req.get_header_value("Connection");
    bool close = strcasecmp(connection.c_str(), "close") == 0 ||
                 (req.version == "HTTP/1.0" && strcasecmp(connection.c_str(), "keep-alive") != 0);
    httplib::Response res;
    current_client_socket = fd;
    dispatch(req, res);
    current_client_socket = -1;
    if (stopping_) close = true;
    const bool ok = write_answer(fd, req, res, close);
    if (logger_) logger_(req, res);
    if (!ok || close) return;
  }
}

// One send for a whole answer; a streamed one (chunked content provider) sends its head,
// then each piece the provider gives as one chunk.
bool FrontServer::write_answer(int fd, const httplib::Request& req, httplib::Response& res,
                               bool close) {
  const bool streamed = bool(res.content_provider_);
  std::string out;
  out.reserve(160 + res.body.size());
  out += "HTTP/1.1 ";
  out += std::to_string(res.status);
  out += ' ';
  out += reason_phrase(res.status);
  out += "\r\n";
  for (const auto& [name, value] : res.headers) {
    if (strcasecmp(name.c_str(), "Content-Length") == 0 ||
        strcasecmp(name.c_str(), "Transfer-Encoding") == 0 ||
        strcasecmp(name.c_str(), "Connection") == 0)
      continue;
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  if (close) {
    out += "Connection: close\r\n";
  } else {
    if (req.version == "HTTP/1.0") out += "Connection: keep-alive\r\n";
    // Clients that honour it (Node's fetch) stop reusing the connection a second before the
    // server closes it, instead of sending a request into a closing socket.
    out += keep_alive_header_;
  }
  if (streamed) {
    out += "Transfer-Encoding: chunked\r\n\r\n";
    if (!send_all(fd, out.data(), out.size())) return false;
    bool done = false, failed = false;
    httplib::DataSink sink;
    std::string chunk;
    size_t offset = 0;
    sink.write = [&](const char* data, size_t n) {
      if (failed) return false;
      if (n == 0) return true;
      char size[24];
      const int len = std::snprintf(size, sizeof size, "%zx\r\n", n);
      chunk.assign(size, size_t(len));
      chunk.append(data, n);
      chunk += "\r\n";
      if (!send_all(fd, chunk.data(), chunk.size())) failed = true;
      offset += n;
      return !failed;
    };
    sink.done = [&] { done = true; };
    sink.is_writable = [&] { return !failed && !server::peer_closed(fd); };
    while (!done && !failed) {
      // A client that went away ends the stream (and, through the provider's releaser, the
      // upstream request) without waiting for the next piece to fail.
      if (server::peer_closed(fd)) {
        failed = true;
        break;
      }
      if (!res.content_provider_(offset, 0, sink)) {
        failed = true;
        break;
      }
    }
    if (failed) return false;
    static const char kLast[] = "0\r\n\r\n";
    if (!send_all(fd, kLast, sizeof kLast - 1)) return false;
    res.content_provider_success_ = true;
    return true;
  }
  out += "Content-Length: ";
  out += std::to_string(res.body.size());
  out += "\r\n\r\n";
  if (req.method != "HEAD") out += res.body;
  return send_all(fd, out.data(), out.size());
}

}  // namespace pocket::gateway
