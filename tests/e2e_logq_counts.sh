#!/usr/bin/env bash
# End-to-end: logq(counts = COLUMN). On a small synthetic log (bench/synth)
# split into given train/test files, a column `pop` holding each item's count
# in the training file: logq(counts = pop) gives each row the probability
# count / (sum of the distinct items' counts) = count / training rows, the
# estimate plain `logq` makes, so the two train the same model byte for byte;
# halving every count (the same shares, a different total) changes nothing
# either; a count column with other values trains another model; the compiler
# refuses a string column and an unknown option name.
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun, synth).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "e2e_logq_counts: FAIL: $*" >&2
  exit 1
}

mkdir -p "$tmp/data"
"$bin/synth" --rows 3000 --users 60 --items 80 --seed 4 --out "$tmp/data" >/dev/null
head -n 2401 "$tmp/data/interactions.csv" >"$tmp/train0.csv"
{ head -n 1 "$tmp/data/interactions.csv"; tail -n +2402 "$tmp/data/interactions.csv"; } >"$tmp/test0.csv"
# pop: the item's rows in the training file (scale $1), or the item's number (other)
addpop() { # $1 scale or "other", $2 in, $3 out
  awk -F, -v s="$1" 'NR == FNR { if (FNR > 1) n[$2]++; next }
    FNR == 1 { print $0 ",pop"; next }
    { v = s == "other" ? substr($2, 2) + 1 : (n[$2] ? n[$2] : 1) * s; print $0 "," v }' \
    "$tmp/train0.csv" "$2" >"$3"
}
for s in 1 0.5 other; do
  addpop $s "$tmp/train0.csv" "$tmp/train.$s.csv"
  addpop $s "$tmp/test0.csv" "$tmp/test.$s.csv"
done
cp "$tmp/data/items.csv" "$tmp/items.csv"
model() {
  cat <<MTR
model lc
input user_id     : string
input movie_title : string
input pop         : float
tower user  = user_id     -> lookup -> embedding(8)
tower movie = movie_title -> lookup -> embedding(8)
task retrieval = retrieval(user, movie) metrics top_k(10) $1
train {
  batch 128
  epochs 2
}
MTR
}
model "logq" >"$tmp/plain.mtr"
model "logq(counts = pop)" >"$tmp/counts.mtr"
"$bin/mtrc" "$tmp/plain.mtr" -o "$tmp/plain.bin"
"$bin/mtrc" "$tmp/counts.mtr" -o "$tmp/counts.bin"
run() { # $1 model, $2 scale, $3 out
  "$bin/mtrun" "$1" --data "$tmp/data" --train "$tmp/train.$2.csv" --test "$tmp/test.$2.csv" \
    --quiet --threads 1 --metrics "$3.json" -o "$3.bin" >/dev/null
}
run "$tmp/plain.bin" 1 "$tmp/p"
run "$tmp/counts.bin" 1 "$tmp/c1"
run "$tmp/counts.bin" 0.5 "$tmp/c5"
run "$tmp/counts.bin" other "$tmp/co"
grep -v '"phase":"step"' "$tmp/p.json" | grep '"top_10"' >"$tmp/p.m" || fail "no metrics"
grep -v '"phase":"step"' "$tmp/c1.json" | grep '"top_10"' >"$tmp/c1.m"
grep -v '"phase":"step"' "$tmp/c5.json" | grep '"top_10"' >"$tmp/c5.m"
grep -v '"phase":"step"' "$tmp/co.json" | grep '"top_10"' >"$tmp/co.m"
cmp -s "$tmp/p.m" "$tmp/c1.m" || fail "counts = the training counts differs from plain logq"
cmp -s "$tmp/c1.m" "$tmp/c5.m" || fail "halved counts (the same shares) differ"
cmp -s "$tmp/c1.m" "$tmp/co.m" && fail "other counts trained the same model"

model "logq(counts = movie_title)" >"$tmp/bad.mtr"
if "$bin/mtrc" "$tmp/bad.mtr" -o "$tmp/bad.bin" 2>"$tmp/err"; then fail "a string count column"; fi
grep -q "not a number input" "$tmp/err" || fail "string column: $(cat "$tmp/err")"
model "logq(count = pop)" >"$tmp/bad.mtr"
if "$bin/mtrc" "$tmp/bad.mtr" -o "$tmp/bad.bin" 2>"$tmp/err"; then fail "logq(count = ...)"; fi
grep -q "counts = COLUMN" "$tmp/err" || fail "logq(count =): $(cat "$tmp/err")"
echo "e2e_logq_counts: ok"
