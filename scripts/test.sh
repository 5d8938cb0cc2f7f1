#!/usr/bin/env bash
# Sets up and runs every test: a release build and an ASan+UBSan build, each
# running the whole ctest suite (the sanitizer pass leaves out the "heavy"
# end-to-end tests on the full data set, which the release pass runs).
# MTR_DATA may name a MovieLens 100K folder for the tests that need one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMTR_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
echo "== release build tests"
(cd build && ctest --output-on-failure -j "$jobs")
echo "== sanitizer build tests (ASan+UBSan)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" -LE heavy)
