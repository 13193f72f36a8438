#include "khsgd/comm/rendezvous.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace khsgd {

namespace {

using Clock = std::chrono::steady_clock;

int milliseconds_until(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// A connected socket to `address`, or -1 with errno set; waits at most until `deadline`.
int connect_before(const addrinfo& address, Clock::time_point deadline) {
  const int fd = ::socket(address.ai_family, address.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          address.ai_protocol);
  if (fd < 0) return -1;
  if (::connect(fd, address.ai_addr, address.ai_addrlen) == 0) return fd;
  if (errno == EINPROGRESS) {
    pollfd wait{fd, POLLOUT, 0};
    int error = ETIMEDOUT;
    socklen_t length = sizeof error;
    if (::poll(&wait, 1, milliseconds_until(deadline)) == 1 &&
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0)
      return fd;
    errno = error;
  }
  const int error = errno;
  ::close(fd);
  errno = error;
  return -1;
}

// What a listener did on a fresh connection within `quiet`: "" for nothing (as a store does).
std::string unasked_behaviour(int fd, std::chrono::milliseconds quiet) {
  pollfd wait{fd, POLLIN, 0};
  if (::poll(&wait, 1, static_cast<int>(quiet.count())) != 1) return "";
  char bytes[48];
  const ssize_t got = ::recv(fd, bytes, sizeof bytes, 0);
  if (got <= 0) return "it closed the connection at once";
  std::string shown;
  for (ssize_t i = 0; i < got; ++i) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '\r' || c == '\n') break;
    shown += c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?';
  }
  return "it sent \"" + shown + "\" unasked";
}

}  // namespace

std::string port_unavailable(int port) {
  // As c10d's server binds: every interface, SO_REUSEADDR (so a port in TIME_WAIT is free).
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return "";  // cannot tell; c10d will say
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  std::string reason;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(fd, 1) != 0)
    reason = std::strerror(errno);
  ::close(fd);
  return reason;
}

ListenerProbe probe_listener(const std::string& host, int port, Clock::time_point deadline,
                             std::chrono::milliseconds quiet) {
  ListenerProbe probe;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  while (true) {
    addrinfo* found = nullptr;
    const int lookup = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
    if (lookup != 0) {
      probe.error = std::string("cannot resolve ") + host + ": " + ::gai_strerror(lookup);
    } else {
      for (const addrinfo* a = found; a != nullptr && !probe.reached; a = a->ai_next) {
        const int fd = connect_before(*a, deadline);
        if (fd < 0) {
          probe.error = std::strerror(errno);
          continue;
        }
        probe.reached = true;
        probe.not_a_store = unasked_behaviour(fd, quiet);
        ::close(fd);
      }
      ::freeaddrinfo(found);
    }
    // Nothing listens yet (rank 0 still starting) or the name does not resolve yet: try again.
    if (probe.reached || Clock::now() >= deadline) return probe;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace khsgd
