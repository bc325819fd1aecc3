#include "gateway/upstream.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <strings.h>
#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace pocket::gateway {

UpstreamPool::UpstreamPool(const std::string& url, int64_t timeout_s) : timeout_s_(timeout_s) {
  std::string rest = url;
  if (rest.rfind("http://", 0) == 0) rest = rest.substr(7);
  if (const auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
  const auto colon = rest.rfind(':');
  host_ = rest.substr(0, colon);
  if (colon != std::string::npos) port_ = std::atoi(rest.c_str() + colon + 1);
  if (host_.size() > 2 && host_.front() == '[' && host_.back() == ']')
    host_ = host_.substr(1, host_.size() - 2);
}

UpstreamPool::~UpstreamPool() {
  for (int fd : idle_) ::close(fd);
}

// No poll() first to see whether the backend closed it meanwhile: a request on such a
// connection gets no byte back, and post() sends it again on a new one (it was not read).
int UpstreamPool::take_idle() {
  std::lock_guard lock(mu_);
  if (idle_.empty()) return -1;
  const int fd = idle_.back();
  idle_.pop_back();
  return fd;
}

void UpstreamPool::give(int fd) {
  std::lock_guard lock(mu_);
  if (idle_.size() < 256)
    idle_.push_back(fd);
  else
    ::close(fd);
}

int UpstreamPool::connect_new(std::string& error) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  const std::string port = std::to_string(port_);
  if (const int rc = getaddrinfo(host_.c_str(), port.c_str(), &hints, &res); rc != 0) {
    error = str("cannot resolve ", host_, ": ", gai_strerror(rc));
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int soerr = 0;
      socklen_t len = sizeof soerr;
      rc = ::poll(&p, 1, 2000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
                   soerr == 0
               ? 0
               : -1;
      if (soerr) errno = soerr;
    }
    if (rc != 0) {
      error = str("cannot connect to ", host_, ":", port_, ": ", std::strerror(errno));
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) return -1;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

namespace {

bool send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += size_t(n);
  }
  return true;
}

// Header value of `name` (case-insensitive) in the header block `head`, or "".
std::string header(const std::string& head, const char* name) {
  const size_t n = std::strlen(name);
  for (size_t pos = head.find("\r\n"); pos != std::string::npos; pos = head.find("\r\n", pos + 2)) {
    const size_t line = pos + 2;
    if (head.size() - line > n && head[line + n] == ':' &&
        strncasecmp(head.c_str() + line, name, n) == 0) {
      size_t v = line + n + 1;
      while (v < head.size() && head[v] == ' ') v++;
      const size_t end = head.find("\r\n", v);
      return head.substr(v, end == std::string::npos ? std::string::npos : end - v);
    }
  }
  return "";
}

// Decodes a chunked body from `in`; false while incomplete.
bool dechunk(const std::string& in, std::string& out, bool& bad) {
  out.clear();
  size_t pos = 0;
  for (;;) {
    const size_t eol = in.find("\r\n", pos);
    if (eol == std::string::npos) return false;
    char* end = nullptr;
    const unsigned long long size = std::strtoull(in.c_str() + pos, &end, 16);
    if (end == in.c_str() + pos) return bad = true, false;
    pos = eol + 2;
    if (size == 0) return in.find("\r\n", pos) != std::string::npos;  // (no trailers expected)
    if (in.size() < pos + size + 2) return false;
    out.append(in, pos, size);
    pos += size + 2;
  }
}

}  // namespace

int UpstreamPool::exchange(int fd, const std::string& request, UpstreamResponse& out, bool& keep,
                           std::string& error) {
  if (!send_all(fd, request)) return 0;
  std::string buf;
  size_t head_end = std::string::npos, need = 0;
  enum { kLength, kChunked, kUntilClose } framing = kLength;
  char chunk[16384];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      error = "timed out waiting for the answer";
      return -1;
    }
    if (n <= 0) {
      if (buf.empty()) {
        error = n == 0 ? "connection closed" : std::strerror(errno);
        return 0;
      }
      if (head_end != std::string::npos && framing == kUntilClose) {
        out.body = buf.substr(head_end + 4);
        keep = false;
        return 1;
      }
      error = n == 0 ? "connection closed mid-answer" : std::strerror(errno);
      return -1;
    }
    buf.append(chunk, size_t(n));
    if (head_end == std::string::npos) {
      head_end = buf.find("\r\n\r\n");
      if (head_end == std::string::npos) continue;
      const std::string head = buf.substr(0, head_end + 2);
      if (head.rfind("HTTP/1.", 0) != 0 || head.size() < 12) {
        error = "not an HTTP answer";
        return -1;
      }
      out.status = std::atoi(head.c_str() + 9);
      out.content_type = header(head, "Content-Type");
      keep = strcasecmp(header(head, "Connection").c_str(), "close") != 0;
      const std::string length = header(head, "Content-Length");
      if (!length.empty())
        framing = kLength, need = head_end + 4 + std::strtoull(length.c_str(), nullptr, 10);
      else if (strcasecmp(header(head, "Transfer-Encoding").c_str(), "chunked") == 0)
        framing = kChunked;
      else
        framing = kUntilClose;
    }
    if (framing == kLength && buf.size() >= need) {
      out.body = buf.substr(head_end + 4, need - head_end - 4);
      return 1;
    }
    if (framing == kChunked) {
      bool bad = false;
      if (dechunk(buf.substr(head_end + 4), out.body, bad)) return 1;
      if (bad) {
        error = "bad chunked encoding";
        return -1;
      }
    }
  }
}

bool UpstreamPool::send(const char* method, const std::string& path, const std::string* body,
                        UpstreamResponse& out, std::string& error,
                        const std::function<bool(int)>& using_fd) {
  const std::string request =
      body ? str(method, " ", path, " HTTP/1.1\r\nHost: ", host_, ":", port_,
                 "\r\nContent-Type: application/json\r\nContent-Length: ", body->size(),
                 "\r\nConnection: keep-alive\r\n\r\n", *body)
           : str(method, " ", path, " HTTP/1.1\r\nHost: ", host_, ":", port_,
                 "\r\nConnection: keep-alive\r\n\r\n");
  for (int attempt = 0; attempt < 2; attempt++) {
    int fd = attempt == 0 ? take_idle() : -1;
    const bool pooled = fd >= 0;
    if (fd < 0) {
      fd = connect_new(error);
      if (fd < 0) return false;
    }
    if (!pooled) {  // pooled connections keep their timeouts
      const timeval rcv{time_t(timeout_s_), 0}, snd{30, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof rcv);
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof snd);
    }
    if (using_fd && !using_fd(fd)) {
      ::close(fd);
      error = "cancelled";
      return false;
    }
    bool keep = true;
    out = UpstreamResponse{};
    const int r = exchange(fd, request, out, keep, error);
    if (using_fd) using_fd(-1);
    if (r == 1 && keep) {
      give(fd);
      return true;
    }
    ::close(fd);
    if (r == 1) return true;
    // A pooled connection that died before answering was closed by the backend while idle
    // (the request was not read): once more on a new connection.
    if (r == -1 || !pooled) return false;
  }
  return false;
}

}  // namespace pocket::gateway
