#!/usr/bin/env bash
# Sets up and runs every test: a release build and an ASan+UBSan build, each
# running the whole ctest suite (the sanitizer pass leaves out the "heavy"
# end-to-end tests on the full data set, which the release pass runs), then,
# when clang is there, a libFuzzer build (build-fuzz, -DMTR_FUZZ=ON) that runs
# each fuzz target for MTR_FUZZ_SECONDS (default 60) from its seed corpus.
# MTR_DATA may name a MovieLens 100K folder for the tests that need one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs"
# The sanitizer build leaves MPI out (e2e_mpi skips there anyway): so the build
# without MPI is built and tested on every run, beside the release build with it.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMTR_SANITIZE=ON -DMTR_MPI=OFF >/dev/null
cmake --build build-asan -j "$jobs"
echo "== release build tests"
(cd build && ctest --output-on-failure -j "$jobs")
echo "== sanitizer build tests (ASan+UBSan)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j "$jobs" -LE heavy)
if command -v clang >/dev/null 2>&1; then
  echo "== fuzz smoke runs (clang, libFuzzer, ASan+UBSan)"
  CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMTR_FUZZ=ON \
    -DMTR_FUZZ_SECONDS="${MTR_FUZZ_SECONDS:-60}" >/dev/null
  cmake --build build-fuzz -j "$jobs" --target fuzz_mtr fuzz_model fuzz_data fuzz_npy mtrc mtrun gen_models
  (cd build-fuzz && ctest --output-on-failure -j "$jobs" -L fuzz)
else
  echo "== fuzz smoke runs skipped: no clang (scripts/install-deps installs it)"
fi
