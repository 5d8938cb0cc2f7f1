#!/usr/bin/env bash
# End-to-end: derived labels, missing labels and sampled tasks.
#   (a) a missing label (an empty cell) is left out of its task's loss: with one
#       batch holding every training row, training on a file whose rows lack
#       some labels gives the metrics of training on the file without those
#       rows (to 1e-4: the products run over more rows, so their sums round
#       differently);
#   (b) a derived label (`label liked = user_rating >= 4`) is the comparison of
#       its column, trains a bce task with auc, and a missing rating leaves
#       `liked` missing too (the metrics of the file without those rows);
#   (c) `sample 0.2` (knob rating.sample) trains on a share of the labels:
#       its run differs from `--set rating.sample=1`, which equals the model
#       without the clause; runs with the same seed are byte-identical;
#   (d) mistakes: a derived label over a string column, a sample outside
#       (0, 1], a sample on a label another task reads: mtrc says so.
# Env: MTR_SOURCE_DIR, MTR_BIN_DIR.
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
mtrc="$bin/mtrc"
mtrun="$bin/mtrun"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0
fail() {
  echo "e2e_labels: FAIL: $*" >&2
  failures=$((failures + 1))
}
same() { # same FILE FILE WHAT
  checks=$((checks + 1))
  cmp -s "$1" "$2" || fail "$3: $(diff "$1" "$2" | head -4 | tr '\n' ' ')"
}
close() { # close FILE FILE WHAT: the same JSON lines, numbers within 1e-4 relative
  checks=$((checks + 1))
  python3 - "$1" "$2" <<'PY' || fail "$3"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
ok = len(a) == len(b) and all(x.keys() == y.keys() for x, y in zip(a, b))
for x, y in zip(a, b) if ok else []:
    for k, v in x.items():
        w = y[k]
        if isinstance(v, float) and abs(v - w) > 1e-4 * max(1.0, abs(v)):
            print(f"{k}: {v} against {w}", file=sys.stderr)
            ok = False
sys.exit(0 if ok else 1)
PY
}
differ() {
  checks=$((checks + 1))
  ! cmp -s "$1" "$2" || fail "$3: the two runs are identical"
}

bash "$src/tests/gen_planted.sh" "$tmp/p" 5 >/dev/null
data="$tmp/p/data"
# Given splits: every 5th row tests. full.csv trains on all the others;
# holes.csv is full.csv with every 3rd rating emptied; kept.csv is full.csv
# without those rows. The folder's own interactions (the vocabularies) stay.
awk -F, 'NR == 1 { print > "'"$tmp"'/test.csv"; print > "'"$tmp"'/full.csv";
                   print > "'"$tmp"'/holes.csv"; print > "'"$tmp"'/kept.csv"; next }
         (NR % 5) == 0 { print > "'"$tmp"'/test.csv"; next }
         { print > "'"$tmp"'/full.csv"; n++
           if (n % 3 == 0) { print $1 "," $2 "," > "'"$tmp"'/holes.csv" }
           else { print > "'"$tmp"'/holes.csv"; print > "'"$tmp"'/kept.csv" } }' \
  "$data/interactions.csv"

rating_only() { # the planted model without its retrieval task: the rows missing a label then count nowhere
  sed '/^task retrieval/d' "$tmp/p/planted.mtr"
}
run() { # run NAME MODEL TRAIN [args...]
  local name=$1 model=$2 train=$3
  shift 3
  "$mtrun" "$model" --data "$data" --train "$train" --test "$tmp/test.csv" --quiet \
    --set train.batch=100000 --metrics "$tmp/$name.jsonl" "$@" >"$tmp/$name.out" 2>&1 ||
    fail "$name: $(cat "$tmp/$name.out")"
}

# ---- (a) missing labels
rating_only >"$tmp/r.mtr"
"$mtrc" "$tmp/r.mtr" -o "$tmp/r.bin"
run a_holes "$tmp/r.bin" "$tmp/holes.csv"
run a_kept "$tmp/r.bin" "$tmp/kept.csv"
close "$tmp/a_holes.jsonl" "$tmp/a_kept.jsonl" "(a) rows with an empty label changed the training"
run a_full "$tmp/r.bin" "$tmp/full.csv"
differ "$tmp/a_holes.jsonl" "$tmp/a_full.jsonl" "(a) emptying a third of the labels"

# ---- (b) a derived label
rating_only | sed 's/^label user_rating : float$/label user_rating : float\nlabel liked = user_rating >= 4/' |
  sed 's/^head rating = \(.*\)$/head rating = \1\nhead like = concat(user, movie) -> dense(8, relu) -> dense(1)/' \
    >"$tmp/l.mtr"
echo "task liked = ranking(like, liked) loss bce metrics auc, log_loss" >>"$tmp/l.mtr"
"$mtrc" "$tmp/l.mtr" -o "$tmp/l.bin" || fail "(b) the derived-label model does not compile"
run b_holes "$tmp/l.bin" "$tmp/holes.csv"
run b_kept "$tmp/l.bin" "$tmp/kept.csv"
close "$tmp/b_holes.jsonl" "$tmp/b_kept.jsonl" "(b) a missing rating did not leave 'liked' missing"
checks=$((checks + 1))
grep -q '"auc"' "$tmp/b_kept.jsonl" && grep -q '"log_loss"' "$tmp/b_kept.jsonl" ||
  fail "(b) no auc or log_loss for the derived label: $(tail -1 "$tmp/b_kept.jsonl")"
# liked is 1 exactly where the rating is >= 4: a model that predicts it from the
# planted generosity (3, 4 or 5 stars) gets an AUC near 1.
checks=$((checks + 1))
auc=$(grep '"phase":"test"' "$tmp/b_kept.jsonl" | sed 's/.*"auc":\([0-9.]*\).*/\1/')
awk -v a="$auc" 'BEGIN { exit !(a > 0.8) }' || fail "(b) liked's test AUC is $auc, not above 0.8"
"$mtrun" "$tmp/l.bin" info >"$tmp/l.info"
checks=$((checks + 1))
grep -q "= user_rating >= 4" "$tmp/l.info" || fail "(b) info does not show the derivation"

# ---- (c) sample
sed 's/^\(task rating .*\)$/\1 sample 0.2/' "$tmp/r.mtr" >"$tmp/s.mtr"
"$mtrc" "$tmp/s.mtr" -o "$tmp/s.bin" || fail "(c) a sampled task does not compile"
run c_sample "$tmp/s.bin" "$tmp/full.csv"
run c_again "$tmp/s.bin" "$tmp/full.csv"
run c_all "$tmp/s.bin" "$tmp/full.csv" --set rating.sample=1
same "$tmp/c_sample.jsonl" "$tmp/c_again.jsonl" "(c) a sampled run is not byte-identical to itself"
differ "$tmp/c_sample.jsonl" "$tmp/c_all.jsonl" "(c) sample 0.2 against rating.sample=1"
same "$tmp/c_all.jsonl" "$tmp/a_full.jsonl" "(c) rating.sample=1 is not the model without the clause"

# ---- (d) mistakes
expect_error() { # expect_error PATTERN MODEL-TEXT
  checks=$((checks + 1))
  printf '%s\n' "$2" >"$tmp/bad.mtr"
  if "$mtrc" --check "$tmp/bad.mtr" >"$tmp/bad.out" 2>&1; then
    fail "(d) mtrc accepted: $2"
  elif ! grep -qE "$1" "$tmp/bad.out"; then
    fail "(d) expected /$1/, got: $(head -1 "$tmp/bad.out")"
  fi
}
base='model m
input u : string
input i : string
label r : float'
expect_error "a derived label compares a number column" "$base
label bad = u >= 4
tower a = u -> lookup -> embedding(4)
head h = a -> dense(1)
task t = ranking(h, bad)"
expect_error "sample must be in \(0, 1\], found 1.5" "$base
tower a = u -> lookup -> embedding(4)
head h = a -> dense(1)
task t = ranking(h, r) sample 1.5"
expect_error "task 't' samples its label 'r', which task 's' also reads" "$base
tower a = u -> lookup -> embedding(4)
head h = a -> dense(1)
head g = a -> dense(1)
task t = ranking(h, r) sample 0.5
task s = ranking(g, r)"
expect_error "unknown task clause 'smaple'; did you mean 'sample'" "$base
tower a = u -> lookup -> embedding(4)
head h = a -> dense(1)
task t = ranking(h, r) smaple 0.5"

echo "e2e_labels: $((checks - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
