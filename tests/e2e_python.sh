#!/usr/bin/env bash
# The Python binding's tests (python/tests, python3 -m unittest) against this
# build's libmtr.so: results equal mtrun's. Skipped (77) when no python3 with
# NumPy is found, and in the sanitizer build (an instrumented libmtr.so cannot
# be loaded into an uninstrumented python3; tests/test_api.c covers the API
# there).
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (the build's bin folder).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
build="$(cd "$bin/.." && pwd)"
if grep -q '^MTR_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "e2e_python: sanitizer build: skipped"
  exit 77
fi
py="$("$src/tests/numpy_python.sh")" || py=""
[ -n "$py" ] || { echo "e2e_python: no python3 with numpy (apt-get install python3-numpy): skipped"; exit 77; }
export MTR_LIB="$build/lib/libmtr.so" MTR_SOURCE_DIR="$src" MTR_BIN_DIR="$bin"
export PYTHONDONTWRITEBYTECODE=1 # nothing written into the source tree
cd "$src/python"
exec "$py" -m unittest discover -s tests -v
