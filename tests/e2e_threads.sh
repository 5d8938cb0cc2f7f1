#!/usr/bin/env bash
# End-to-end: threads. On a small synthetic log (bench/synth: 40,000 rows, 3,000
# users, 2,000 items, large enough that the fused softmax, the ranking and the
# sparse updates split their rows across the pool), the joint model trained at
# --threads 2 twice gives byte-identical metrics (timings aside) and saved
# models, and every test metric at --threads 1 agrees with --threads 2 to
# 1e-4 (the parts sum in another order, so the last bits differ).
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun, synth).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "e2e_threads: FAIL: $*" >&2
  exit 1
}

mkdir -p "$tmp/data"
"$bin/synth" --rows 40000 --users 3000 --items 2000 --seed 7 --out "$tmp/data"
"$bin/mtrc" "$src/models/movielens.mtr" -o "$tmp/model.bin"

# train NAME THREADS
train() {
  "$bin/mtrun" "$tmp/model.bin" --data "$tmp/data" --threads "$2" --quiet \
    --set rating.weight=1 --set retrieval.weight=1 --set train.epochs=2 \
    --metrics "$tmp/$1.jsonl" -o "$tmp/$1.bin" >"$tmp/$1.out"
}

train a 2
train b 2
train one 1
cmp -s "$tmp/a.jsonl" "$tmp/b.jsonl" || fail "two runs at 2 threads wrote different metrics"
cmp -s "$tmp/a.bin" "$tmp/b.bin" || fail "two runs at 2 threads saved different models"
echo "  ok   2 threads twice: byte-identical metrics and models"

python3 - "$tmp/one.jsonl" "$tmp/a.jsonl" <<'PY' || fail "metrics at 1 and 2 threads differ"
import json, sys

def test_line(path):
    for line in open(path):
        row = json.loads(line)
        if row.get("phase") == "test":
            return row
    sys.exit(f"no test line in {path}")

one, two = test_line(sys.argv[1]), test_line(sys.argv[2])
bad = 0
for k, v in one.items():
    if k == "phase":
        continue
    ok = abs(v - two[k]) <= 1e-4
    print(f"  {'ok  ' if ok else 'FAIL'} {k}: 1 thread {v:.6f}, 2 threads {two[k]:.6f}")
    bad += not ok
sys.exit(1 if bad else 0)
PY
