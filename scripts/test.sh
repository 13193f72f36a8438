#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: the command CI runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build
ctest --test-dir build -j2 --output-on-failure
