// The gateway's upstream HTTP client against a real cpp-httplib server on 127.0.0.1:
// framing (Content-Length, chunked), pooled connections the server closed, the server's
// last answer on a connection, error statuses, time-outs, refused connections, cutting a
// request by shutting its connection down.
#include "gateway/upstream.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

namespace pocket::gateway {
namespace {

struct TestServer {
  httplib::Server http;
  std::thread thread;
  int port = 0;
  TestServer() {
    http.set_keep_alive_timeout(1);
    http.set_keep_alive_max_count(3);
    http.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content("got " + req.body, "application/json");
    });
    http.Post("/chunked", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/plain", [](size_t, httplib::DataSink& sink) {
        for (int i = 0; i < 3; i++) sink.write("part", 4);
        sink.done();
        return true;
      });
    });
    http.Post("/missing", [](const httplib::Request&, httplib::Response& res) {
      res.status = 404;
      res.set_content("{\"error\":1}", "application/json");
    });
    http.Post("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      res.set_content("late", "text/plain");
    });
    port = http.bind_to_any_port("127.0.0.1");
    thread = std::thread([this] { http.listen_after_bind(); });
    while (!http.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ~TestServer() {
    http.stop();
    thread.join();
  }
};

TEST(GatewayUpstream, FramingPoolingAndErrors) {
  TestServer server;
  UpstreamPool pool("http://127.0.0.1:" + std::to_string(server.port), 5);
  UpstreamResponse r;
  std::string error;
  // Several requests in a row: the server closes each connection after 3 answers
  // (Connection: close), the pool opens a new one.
  for (int i = 0; i < 7; i++) {
    ASSERT_TRUE(pool.post("/echo", "{\"i\":" + std::to_string(i) + "}", r, error)) << error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "got {\"i\":" + std::to_string(i) + "}");
    EXPECT_EQ(r.content_type, "application/json");
  }
  ASSERT_TRUE(pool.post("/chunked", "{}", r, error)) << error;
  EXPECT_EQ(r.body, "partpartpart");
  ASSERT_TRUE(pool.post("/missing", "{}", r, error)) << error;
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "{\"error\":1}");
  // The pooled connection outlives the server's keep-alive time-out: the server closed it;
  // the request goes out on a new connection.
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  ASSERT_TRUE(pool.post("/echo", "again", r, error)) << error;
  EXPECT_EQ(r.body, "got again");
  // No answer in time.
  UpstreamPool impatient("http://127.0.0.1:" + std::to_string(server.port), 1);
  EXPECT_FALSE(impatient.post("/slow", "{}", r, error));
  EXPECT_NE(error.find("timed out"), std::string::npos) << error;
}

TEST(GatewayUpstream, CutByShutdownAndRefused) {
  TestServer server;
  UpstreamPool pool("http://127.0.0.1:" + std::to_string(server.port), 5);
  UpstreamResponse r;
  std::string error;
  std::atomic<int> fd{-1};
  std::atomic<bool> cut{false};
  std::thread cutter([&] {
    while (fd.load() < 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cut = true;
    ::shutdown(fd.load(), SHUT_RDWR);
  });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(pool.post("/slow", "{}", r, error, [&](int f) {
    if (f >= 0) fd = f;
    return !cut.load();
  }));
  cutter.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2000));

  UpstreamPool nowhere("http://127.0.0.1:1", 1);
  EXPECT_FALSE(nowhere.post("/echo", "{}", r, error));
  EXPECT_NE(error.find("cannot connect"), std::string::npos) << error;
}

}  // namespace
}  // namespace pocket::gateway
