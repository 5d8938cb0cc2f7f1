#!/usr/bin/env bash
# The main job on a fresh machine: install what the build needs, build, get
# MovieLens 100K (from $MTR_DATA, ./data, or GroupLens, checking the published
# SHA-256 sums), compile models/movielens.mtr, train the tutorial's joint model
# (both loss weights 1.0) and print its test metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs" --target mtrc mtrun >/dev/null
data=$(scripts/get-data data | tail -n 1)
mkdir -p out
build/bin/mtrc models/movielens.mtr -o out/movielens.bin
echo "compiled models/movielens.mtr -> out/movielens.bin"
build/bin/mtrun out/movielens.bin --data "$data" --threads "$jobs" \
  --set rating.weight=1 --set retrieval.weight=1 \
  --metrics out/movielens.metrics.jsonl -o out/movielens.trained.bin
