#!/usr/bin/env bash
# `pip install .` works: builds the wheel of the Python module from SOURCE with PYTHON (its
# scikit-build-core and pybind11, no build isolation: no downloads), installs it into a folder of
# its own and runs the module's tests against the installed copy. Exits 77 (a skip) where PYTHON
# lacks scikit-build-core or pybind11.
#   tests/python_install_test.sh PYTHON SOURCE
set -euo pipefail
python=${1:?usage: $0 PYTHON SOURCE}
source_dir=${2:?usage: $0 PYTHON SOURCE}
[[ "$python" == */* ]] && python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python")
"$python" -c "import scikit_build_core, pybind11" 2> /dev/null || {
  echo "skip: $python has no scikit-build-core or pybind11"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$source_dir"/{CMakeLists.txt,pyproject.toml,LICENSE,include,src,python,cmake} "$work"/
"$python" -m pip wheel -q --no-build-isolation --no-deps "$work" -w "$work/wheel"
"$python" -m pip install -q --no-deps --target "$work/site" "$work"/wheel/khsgd-*.whl
cd "$work"
PYTHONPATH="$work/site" "$python" -c "
import khsgd, sys
assert khsgd.__file__.startswith('$work/site'), khsgd.__file__
print('installed khsgd from', khsgd.__file__, khsgd.sorter_names())"
PYTHONPATH="$work/site" KHSGD_SOURCE_DIR="$source_dir" "$python" -m pytest -q -p no:cacheprovider \
  "$source_dir/python/tests" -k "not golden_orders and not two_processes"
