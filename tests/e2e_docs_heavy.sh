#!/usr/bin/env bash
# The shell examples of README.md and docs/*.md run as shown and print what
# the docs say they print (tests/docs_examples.py; the marker convention is in
# docs/cli.md, "Examples in these docs"). They train on MovieLens 100K:
# skipped (77) when $MTR_DATA does not hold it, or without a python3 with NumPy.
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (the build's bin folder),
# MTR_DATA (the MovieLens 100K folder).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
build="$(cd "$bin/.." && pwd)"
if [ -z "${MTR_DATA:-}" ] || [ ! -f "$MTR_DATA/u.data" ]; then
  echo "e2e_docs: MTR_DATA does not name MovieLens 100K: skipped"
  exit 77
fi
py="$("$src/tests/numpy_python.sh")" || py=""
[ -n "$py" ] || { echo "e2e_docs: no python3 with numpy: skipped"; exit 77; }
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
# The examples say `python3`: the one with NumPy, whatever the PATH holds.
ln -s "$py" "$tools/python3"
mkdir -p "$tools/data"
ln -s "$MTR_DATA" "$tools/data/ml-100k"
# (No PYTHONPATH: the docs say where the binding is. MTR_LIB names this
# build's library, wherever the build folder is.)
export PATH="$tools:$bin:$PATH" MTR_LIB="$build/lib/libmtr.so"
unset PYTHONPATH
export MTR_DOCS_DATA="$tools/data"
export PYTHONDONTWRITEBYTECODE=1 # nothing written into the source tree
# The figures shown are those of two threads, whatever the cores here.
export MTR_THREADS=2
cd "$src"
# Every file named here must hold examples (the runner fails one without).
exec "$py" tests/docs_examples.py "$src" "$build" README.md docs/cli.md docs/export.md docs/api.md
