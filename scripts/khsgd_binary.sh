# Sourced by the scripts beside it: sets KHSGD_TRAIN to the khsgd_train binary to run, or says
# where it looked and exits 2. In order: $KHSGD_TRAIN; build/khsgd_train of this checkout; the
# installed one (cmake --install puts the scripts in PREFIX/share/khsgd/scripts and the binary in
# PREFIX/bin).
khsgd_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -z "${KHSGD_TRAIN:-}" ]; then
  for candidate in "$khsgd_here/../build/khsgd_train" "$khsgd_here/../../../bin/khsgd_train"; do
    if [ -x "$candidate" ]; then KHSGD_TRAIN=$candidate; break; fi
  done
fi
if [ ! -x "${KHSGD_TRAIN:-}" ]; then
  echo "$(basename "$0"): no khsgd_train binary (looked for \$KHSGD_TRAIN, $khsgd_here/../build/khsgd_train" \
       "and an installed one); build first (cmake --build build) or set KHSGD_TRAIN" >&2
  exit 2
fi
export KHSGD_TRAIN
