// Noticing, while a request waits for the engine, that its client has gone
// away, so that its generation is cancelled at once instead of running to
// max_tokens for nobody. The Debian cpp-httplib (0.11) gives a handler no
// access to its connection, so the socket is found by its two addresses among
// this process's descriptors and then polled without reading from it.
#pragma once

#include <string>

namespace pocket::server {

// The descriptor of this process's TCP socket whose local end is
// local_addr:local_port and whose peer is remote_addr:remote_port (addresses as
// numeric text, as cpp-httplib gives them), or -1. The caller must keep the
// connection open while it uses the descriptor (a request handler does).
int find_tcp_socket(const std::string& local_addr, int local_port, const std::string& remote_addr,
                    int remote_port);

// True once the peer has closed (or half-closed) its side or the connection is
// broken. Bytes the peer sent are left unread; they do not count as closed.
bool peer_closed(int fd);

}  // namespace pocket::server
