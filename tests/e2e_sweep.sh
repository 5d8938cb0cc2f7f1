#!/usr/bin/env bash
# End-to-end: mtrun sweep. On a small synthetic log (bench/synth), a sweep of
# two loss weights over two seeds prints one row per setting with the best
# marked, writes four JSON lines of phase "sweep", and each run's metrics are
# byte for byte those of the same single run (--set ... --metrics). A bad
# value is refused before any run trains.
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
if "$bin/mtrun" "$tmp/model.bin" sweep "${common[@]}" --set retrieval.weight=0,x 2>"$tmp/err" >/dev/null; then
  fail "a bad value was accepted"
fi
grep -q "is not" "$tmp/err" || fail "the bad value's message: $(cat "$tmp/err")"
echo "e2e_sweep: ok"
