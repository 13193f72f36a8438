// Work split into parts that run side by side: the evaluation's runs of rows (model.cpp) and the
// synthetic set's blocks (data.cpp).
#pragma once

#include <cstdint>
#include <exception>
#include <thread>
#include <vector>

namespace khsgd {

// Calls part(p) once for every p in [0, parts): parts 1.. on threads of their own, part 0 on the
// calling thread, and a part no thread could be started for there too, after part 0. Returns once
// every part has returned; then what the lowest part threw is rethrown, so no thread outlives the
// call and no failure is lost (a helper thread that threw would otherwise end the program).
template <class Part>
void run_parts(int64_t parts, Part&& part) {
  if (parts <= 0) return;
  std::vector<std::exception_ptr> failures(static_cast<size_t>(parts));
  auto guarded = [&](int64_t p) {
    try {
      part(p);
    } catch (...) { failures[static_cast<size_t>(p)] = std::current_exception(); }
  };
  std::vector<std::thread> helpers;
  helpers.reserve(static_cast<size_t>(parts - 1));
  int64_t started = 1;
  for (; started < parts; ++started) {
    try {
      helpers.emplace_back(guarded, started);
    } catch (...) {  // no more threads to be had (std::system_error, or no memory for one):
      break;         // this one runs the rest
    }
  }
  guarded(0);
  for (int64_t p = started; p < parts; ++p) guarded(p);
  for (std::thread& helper : helpers) helper.join();
  for (const std::exception_ptr& failure : failures)
    if (failure) std::rethrow_exception(failure);
}

}  // namespace khsgd
