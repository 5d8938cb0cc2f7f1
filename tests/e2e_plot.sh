#!/usr/bin/env bash
# scripts/plot-metrics draws a PNG from mtrun's metrics files: one run (with
# --train-metrics), a sweep of two runs, and a cv file; bad input is an error
# naming the file and line. Skipped (77) without gnuplot or python3.
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
command -v gnuplot >/dev/null || { echo "e2e_plot: no gnuplot (apt-get install gnuplot-nox): skipped"; exit 77; }
command -v python3 >/dev/null || { echo "e2e_plot: no python3: skipped"; exit 77; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
  echo "e2e_plot: FAIL: $*" >&2
  failures=$((failures + 1))
}
# is_png FILE: a PNG of some size (its signature, and more than a header).
is_png() {
  [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] &&
    [ "$(wc -c <"$1")" -gt 2000 ]
}

"$src/tests/gen_planted.sh" "$tmp/p" 7 >/dev/null
"$bin/mtrc" "$tmp/p/planted.mtr" -o "$tmp/model.bin"
"$bin/mtrun" "$tmp/model.bin" --data "$tmp/p/data" --quiet --train-metrics --set train.epochs=4 \
  --metrics "$tmp/joint.jsonl" >/dev/null
"$bin/mtrun" "$tmp/model.bin" --data "$tmp/p/data" --quiet --set train.epochs=4 \
  --set retrieval.weight=0 --metrics "$tmp/rating-only.jsonl" >/dev/null

"$src/scripts/plot-metrics" "$tmp/joint.jsonl" -o "$tmp/one.png" || fail "one run: status $?"
is_png "$tmp/one.png" || fail "one run: $tmp/one.png is not a PNG"
"$src/scripts/plot-metrics" "$tmp/joint.jsonl" "$tmp/rating-only.jsonl" -o "$tmp/sweep.png" \
  --title "a sweep" || fail "sweep: status $?"
is_png "$tmp/sweep.png" || fail "sweep: not a PNG"
cp "$tmp/p/data/interactions.csv" "$tmp/p/data/u1.base"
cp "$tmp/p/data/interactions.csv" "$tmp/p/data/u1.test"
if "$bin/mtrun" "$tmp/model.bin" cv --data "$tmp/p/data" --folds u1 --quiet \
  --metrics "$tmp/cv.jsonl" >/dev/null 2>&1; then
  "$src/scripts/plot-metrics" "$tmp/cv.jsonl" -o "$tmp/cv.png" || fail "cv: status $?"
  is_png "$tmp/cv.png" || fail "cv: not a PNG"
fi

# Bad input: a clear error and no picture.
printf '{"phase":"train","epoch":1,"loss":2}\nnot json\n' >"$tmp/bad.jsonl"
if "$src/scripts/plot-metrics" "$tmp/bad.jsonl" -o "$tmp/bad.png" 2>"$tmp/err"; then
  fail "a file that is not JSON lines is accepted"
fi
grep -q "bad.jsonl:2: not JSON" "$tmp/err" || fail "bad input message: $(cat "$tmp/err")"
[ ! -e "$tmp/bad.png" ] || fail "bad input left a picture"
if "$src/scripts/plot-metrics" "$tmp/joint.jsonl" 2>/dev/null; then fail "no -o is accepted"; fi

if [ "$failures" -ne 0 ]; then
  echo "e2e_plot: $failures failures" >&2
  exit 1
fi
echo "e2e_plot: ok"
