// A real TCP connection on 127.0.0.1: the server end is found by its addresses
// and reports the client's close (also behind unread bytes), not before.
#include "server/peer_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace pocket::server {
namespace {

int port_of(int fd, bool peer) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len)
       : getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

struct Connection {
  int listener = -1, client = -1, server = -1;
  Connection() {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(listener, 4), 0);
    a.sin_port = htons(uint16_t(port_of(listener, false)));
    client = socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_EQ(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    server = accept(listener, nullptr, nullptr);
    EXPECT_GE(server, 0);
  }
  ~Connection() {
    for (int fd : {listener, client, server})
      if (fd >= 0) close(fd);
  }
};

TEST(PeerSocket, FindsTheServerEndByItsAddresses) {
  Connection c;
  const int local = port_of(c.server, false), remote = port_of(c.server, true);
  EXPECT_EQ(find_tcp_socket("127.0.0.1", local, "127.0.0.1", remote), c.server);
  // The client end has the same two addresses the other way round.
  EXPECT_EQ(find_tcp_socket("127.0.0.1", remote, "127.0.0.1", local), c.client);
  EXPECT_EQ(find_tcp_socket("127.0.0.1", local, "127.0.0.1", remote == 65535 ? 1 : remote + 1), -1);
  EXPECT_EQ(find_tcp_socket("127.0.0.2", local, "127.0.0.1", remote), -1);
  EXPECT_EQ(find_tcp_socket("", -1, "", -1), -1);
}

TEST(PeerSocket, ReportsTheClientsCloseAndNothingBefore) {
  Connection c;
  EXPECT_FALSE(peer_closed(c.server));
  ASSERT_EQ(write(c.client, "GET / HTTP/1.1\r\n\r\n", 18), 18);  // unread bytes: still open
  EXPECT_FALSE(peer_closed(c.server));
  close(c.client);
  c.client = -1;
  bool closed = false;
  for (int i = 0; i < 100 && !closed; i++) {
    closed = peer_closed(c.server);
    if (!closed) usleep(1000);
  }
  EXPECT_TRUE(closed);
}

}  // namespace
}  // namespace pocket::server
