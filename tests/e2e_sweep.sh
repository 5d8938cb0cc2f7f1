#!/usr/bin/env bash
# End-to-end: mtrun sweep. On a small synthetic log (bench/synth), a sweep of
# two loss weights over two seeds prints one row per setting with the best
# marked, writes four JSON lines of phase "sweep", and each run's metrics are
# byte for byte those of the same single run at one thread (--set ...
# --metrics). Two runs at once (--threads 2: runs/sweep.c's workers, which the
# sanitizer pass runs too) print the same table and write the same lines as one
# at a time, with every run's progress in run order. A run that fails stops
# the sweep with its message and no metrics file. A bad value is refused
# before any run trains.
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun, synth).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "e2e_sweep: FAIL: $*" >&2
  exit 1
}

mkdir -p "$tmp/data"
"$bin/synth" --rows 6000 --users 300 --items 200 --seed 5 --out "$tmp/data"
"$bin/mtrc" "$src/models/movielens.mtr" -o "$tmp/model.bin"
common=(--data "$tmp/data" --threads 1 --quiet --set train.epochs=1 --set train.batch=512)
"$bin/mtrun" "$tmp/model.bin" sweep "${common[@]}" --set retrieval.weight=0,1 --seeds 3,4 \
  --metrics "$tmp/sweep.jsonl" >"$tmp/sweep.out"
[ "$(grep -c '"phase":"sweep"' "$tmp/sweep.jsonl")" -eq 4 ] || fail "not four sweep lines"
grep -q '^retrieval.weight=0 ' "$tmp/sweep.out" || fail "no row for retrieval.weight=0"
grep -q '^retrieval.weight=1 ' "$tmp/sweep.out" || fail "no row for retrieval.weight=1"
[ "$(grep -c '\*' "$tmp/sweep.out")" -ge 2 ] || fail "the best settings are not marked"
grep -q '^baseline ' "$tmp/sweep.out" || fail "no baseline row"
for w in 0 1; do
  for s in 3 4; do
    "$bin/mtrun" "$tmp/model.bin" "${common[@]}" --set retrieval.weight=$w --set train.seed=$s \
      --metrics "$tmp/one.jsonl" >/dev/null
    want="$(grep '"phase":"test"' "$tmp/one.jsonl" | sed 's/^{"phase":"test",//')"
    got="$(grep "\"retrieval.weight\":$w,\"train.seed\":$s," "$tmp/sweep.jsonl" |
      sed 's/^.*"train.seed":[^,]*,//')"
    [ -n "$got" ] && [ "$got" = "$want" ] || fail "weight $w seed $s: sweep gave '$got', the single run '$want'"
  done
done
# Two runs at once: the same table and lines, the progress in run order.
two=(--data "$tmp/data" --threads 2 --set train.epochs=1 --set train.batch=512)
"$bin/mtrun" "$tmp/model.bin" sweep "${two[@]}" --set retrieval.weight=0,1 --seeds 3,4 \
  --metrics "$tmp/sweep2.jsonl" >"$tmp/sweep2.out" 2>"$tmp/sweep2.err"
cmp -s "$tmp/sweep.out" "$tmp/sweep2.out" || fail "two at once printed another table: $(diff "$tmp/sweep.out" "$tmp/sweep2.out")"
cmp -s "$tmp/sweep.jsonl" "$tmp/sweep2.jsonl" || fail "two at once wrote other lines: $(diff "$tmp/sweep.jsonl" "$tmp/sweep2.jsonl")"
[ "$(grep '^run ' "$tmp/sweep2.err" | cut -d: -f1 | tr '\n' ' ')" = "run 1/4 run 2/4 run 3/4 run 4/4 " ] ||
  fail "the runs' progress is not in run order: $(cat "$tmp/sweep2.err")"
[ "$(grep -c '^epoch 1/1' "$tmp/sweep2.err")" -eq 4 ] || fail "not one epoch line per run: $(cat "$tmp/sweep2.err")"
# A failing run (a learning rate that diverges, third of four) stops the sweep
# with its message and writes no metrics file, one at a time or two at once.
for t in 1 2; do
  rm -f "$tmp/bad.jsonl"
  if "$bin/mtrun" "$tmp/model.bin" sweep --data "$tmp/data" --threads $t --quiet \
    --set train.epochs=1 --set train.batch=512 --set optimizer.lr=0.1,1e30 --seeds 3,4 \
    --metrics "$tmp/bad.jsonl" >"$tmp/bad.out" 2>"$tmp/bad.err"; then
    fail "--threads $t: a diverging run did not fail the sweep"
  fi
  grep -q "diverged" "$tmp/bad.err" || fail "--threads $t: the failed run's message: $(cat "$tmp/bad.err")"
  [ ! -e "$tmp/bad.jsonl" ] || fail "--threads $t: a failed sweep wrote its metrics file"
  [ ! -s "$tmp/bad.out" ] || fail "--threads $t: a failed sweep printed a table"
done
if "$bin/mtrun" "$tmp/model.bin" sweep "${common[@]}" --set retrieval.weight=0,x 2>"$tmp/err" >/dev/null; then
  fail "a bad value was accepted"
fi
grep -q "is not" "$tmp/err" || fail "the bad value's message: $(cat "$tmp/err")"
echo "e2e_sweep: ok"
