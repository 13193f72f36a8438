// Checks of MASTER_ADDR:MASTER_PORT made with plain sockets before c10d's TCPStore is given it.
//
// c10d trusts whatever answers on the port: a client whose store is some other program (an ssh
// or web server, a notebook's socket) reads lengths off the wire and allocates them, which throws
// std::bad_alloc in c10d's own listening thread and aborts the process (SIGABRT, no message); a
// program that accepts and never answers leaves the rank waiting for ever. These checks turn both
// into one line that names the port.
#pragma once

#include <chrono>
#include <string>

namespace khsgd {

// Whether a server can listen on `port` here: "" if so, else the reason ("Address already in
// use"). Rank 0 asks before it serves the store, so a port another program holds is named before
// c10d logs its own bind failures.
std::string port_unavailable(int port);

// What a client sees at host:port. Connects, retrying while nothing listens there yet (rank 0 not
// started) until `deadline`; then listens `quiet` for bytes the listener sends unasked (a c10d
// store never does).
struct ListenerProbe {
  bool reached = false;     // a connection was made before the deadline
  std::string error;        // why not, when !reached (the last connect error)
  std::string not_a_store;  // what the listener did that a c10d store never does ("" if none)
};
ListenerProbe probe_listener(const std::string& host, int port,
                             std::chrono::steady_clock::time_point deadline,
                             std::chrono::milliseconds quiet);

}  // namespace khsgd
