// Test helper standing in for torchrun's elastic agent: serves a c10d TCPStore on PORT for
// SECONDS (or until killed), so that workers launched with TORCHELASTIC_USE_AGENT_STORE=True
// have a store to join as clients.
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <thread>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(std::atoi(argv[1]));
  options.isServer = true;
  options.waitWorkers = false;
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options);
  std::this_thread::sleep_for(std::chrono::seconds(std::atoi(argv[2])));
  return 0;
}
