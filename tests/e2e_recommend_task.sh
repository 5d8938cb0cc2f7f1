#!/usr/bin/env bash
# End-to-end: recommend with two retrieval tasks. On a small synthetic log
# (bench/synth) split into given train/test files, a model with two retrieval
# tasks recommends with the first by default and with the other by --task; an
# unknown --task fails naming the tasks there are; --exclude-seen lists no item
# the user has in the training file, and no list holds an item twice.
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun, synth).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "e2e_recommend_task: FAIL: $*" >&2
  exit 1
}

mkdir -p "$tmp/data"
"$bin/synth" --rows 3000 --users 60 --items 80 --seed 2 --out "$tmp/data" >/dev/null
head -n 2401 "$tmp/data/interactions.csv" >"$tmp/train.csv"
{ head -n 1 "$tmp/data/interactions.csv"; tail -n +2402 "$tmp/data/interactions.csv"; } >"$tmp/test.csv"
cat >"$tmp/two.mtr" <<'MTR'
model two
input user_id     : string
input movie_title : string
label user_rating : float
tower user  = user_id     -> lookup -> embedding(8)
tower user2 = user_id     -> lookup -> embedding(8)
tower movie = movie_title -> lookup -> embedding(8)
task first  = retrieval(user, movie) metrics top_k(10)
task second = retrieval(user2, movie) metrics top_k(10) logq remove_accidental_hits
train {
  batch 256
  epochs 2
}
MTR
"$bin/mtrc" "$tmp/two.mtr" -o "$tmp/two.bin"
split=(--data "$tmp/data" --train "$tmp/train.csv" --test "$tmp/test.csv")
"$bin/mtrun" "$tmp/two.bin" "${split[@]}" --quiet --threads 1 -o "$tmp/t.bin" >/dev/null
rec() { "$bin/mtrun" "$tmp/t.bin" recommend --user u3 -k 20 "$@"; }
rec >"$tmp/default"
rec --task first >"$tmp/first"
rec --task second >"$tmp/second"
cmp -s "$tmp/default" "$tmp/first" || fail "the default task is not the first"
cmp -s "$tmp/first" "$tmp/second" && fail "--task second lists what the first does"
if rec --task nope 2>"$tmp/err" >/dev/null; then fail "an unknown --task was accepted"; fi
grep -q "it has: first, second" "$tmp/err" || fail "unknown --task: $(cat "$tmp/err")"
for t in first second; do
  rec --task $t --exclude-seen "${split[@]}" >"$tmp/ex"
  [ -s "$tmp/ex" ] || fail "--exclude-seen listed nothing"
  seen="$(awk -F, '$1 == "u3" { print $2 }' "$tmp/train.csv" | sort -u)"
  listed="$(cut -f3 "$tmp/ex" | sort)"
  [ -z "$(comm -12 <(echo "$seen") <(echo "$listed"))" ] || fail "$t: --exclude-seen lists a seen item"
  [ "$(echo "$listed" | uniq -d)" = "" ] || fail "$t: an item listed twice"
done
echo "e2e_recommend_task: ok"
