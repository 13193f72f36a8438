#!/usr/bin/env bash
# Whether a build against a LibTorch without Gloo headers (the PyPI wheels ship none) may use
# Debian's libgloo-dev headers, an older Gloo than the one compiled into that LibTorch:
#
#   scripts/check-gloo-mix.sh BUILD_DIR
#
# It is sound as long as khsgd's code compiles nothing of Gloo's own: the headers then only
# declare the types that ProcessGroupGloo.hpp holds by pointer (shared_ptr<gloo::Context>,
# shared_ptr<gloo::transport::Device>, ...), and every Gloo function runs from the LibTorch that
# defines it. A Gloo function, vtable or object defined in comm.cpp's object file would be code
# from the other Gloo's headers, laid out as that Gloo lays out its classes: this fails on any
# (a std:: container of such pointers is fine: its code does not depend on Gloo's layouts).
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR}
object=$build/CMakeFiles/khsgd_torch.dir/src/comm/comm.cpp.o
[ -f "$object" ] || { echo "check-gloo-mix: $object not found (build first)" >&2; exit 2; }
# The symbols are read into a variable first: `nm | grep -q` under pipefail fails when grep stops
# at its first match and nm dies of SIGPIPE, which would read as "no gloo backend".
symbols=$(nm -C "$object")
if ! grep -q "ProcessGroupGloo" <<< "$symbols"; then
  echo "check-gloo-mix: this build has no gloo backend; nothing to check"
  exit 0
fi
defined=$(nm -C --defined-only "$object")
own=$(grep -E ' (gloo::|c10d::ProcessGroupGloo::GlooStore|(vtable|typeinfo|VTT) for gloo::)' <<< "$defined" || true)
if [ -n "$own" ]; then
  echo "check-gloo-mix: comm.cpp compiles Gloo code of its own from the Gloo headers it was given;" \
       "mixing them with this LibTorch's Gloo is unsafe:" >&2
  echo "$own" >&2
  exit 1
fi
echo "check-gloo-mix: comm.cpp defines no Gloo code; it calls $(nm -C --undefined-only "$object" |
  grep -c 'ProcessGroupGloo' || true) ProcessGroupGloo function(s) of the LibTorch it links"
