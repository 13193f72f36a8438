// Parsing a command line in a test: the Config it gives, or the error it names.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "khsgd/app/config.hpp"
#include "khsgd/base/errors.hpp"

namespace khsgd_test {

inline khsgd::Config parse(std::vector<std::string> args) {
  args.insert(args.begin(), "khsgd_train");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  khsgd::Config config;
  std::string help;
  if (!khsgd::parse_command_line(static_cast<int>(argv.size()), argv.data(), &config, &help))
    throw std::logic_error("help");
  return config;
}

inline std::string error_of(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const khsgd::UserError& e) { return e.what(); }
  return "";
}

}  // namespace khsgd_test
