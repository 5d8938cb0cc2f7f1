#!/usr/bin/env bash
# End-to-end on MovieLens 100K: the tutorial's three runs meet the acceptance
# thresholds, serving works, and training is deterministic.
#
# Skipped (exit 77) unless $MTR_DATA names a folder holding u.data. Compiles
# models/movielens.mtr once and trains it at seed 42, --threads 1, three ways:
#   rating-only    (1, 0): RMSE <= 1.135 and top-100 <= 0.09 (TFRS: 1.113, 0.060)
#   retrieval-only (0, 1): top-100 >= 0.22                   (TFRS: 0.233)
#   joint          (1, 1): top-100 >= 0.22 and RMSE <= 1.25  (TFRS: 0.235, 1.110)
# Then: predict (user 42, "Dances with Wolves (1990)") prints one finite
# rating; recommend (user 42, -k 10) prints 10 lines; and the joint run again
# gives byte-identical metrics and a
# byte-identical saved model. A few seconds in a release build.
# Env: MTR_DATA, MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun).
set -euo pipefail

if [ -z "${MTR_DATA:-}" ] || [ ! -f "$MTR_DATA/u.data" ]; then
  echo "e2e_tutorial_heavy: skipped: set MTR_DATA to a MovieLens 100K folder (with u.data)"
  exit 77
fi
src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "e2e_tutorial_heavy: FAIL: $*" >&2
  failures=$((failures + 1))
}

# The value of numeric field $2 in the test line of metrics file $1.
metric() {
  grep '"phase":"test"' "$1" | sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p"
}

# check NAME VALUE OP LIMIT: records a failure unless VALUE OP LIMIT.
check() {
  local name="$1" value="$2" op="$3" limit="$4"
  if [ -z "$value" ]; then
    fail "$name: no value in the metrics"
  elif awk -v v="$value" -v l="$limit" "BEGIN { exit !(v $op l) }"; then
    echo "  ok   $name = $value ($op $limit)"
  else
    fail "$name = $value, expected $op $limit"
  fi
}

"$bin/mtrc" "$src/models/movielens.mtr" -o "$tmp/model.bin"

# train NAME RATING_WEIGHT RETRIEVAL_WEIGHT
train() {
  local start=$SECONDS
  "$bin/mtrun" "$tmp/model.bin" --data "$MTR_DATA" --threads 1 --quiet \
    --set train.seed=42 --set rating.weight="$2" --set retrieval.weight="$3" \
    --metrics "$tmp/$1.jsonl" -o "$tmp/$1.bin" >"$tmp/$1.log"
  echo "$1 (rating.weight=$2, retrieval.weight=$3): $((SECONDS - start)) s"
  grep '"phase":"test"' "$tmp/$1.jsonl"
}

train rating 1 0
check "rating-only rmse" "$(metric "$tmp/rating.jsonl" rmse)" "<=" 1.135
check "rating-only top_100" "$(metric "$tmp/rating.jsonl" top_100)" "<=" 0.09
train retrieval 0 1
check "retrieval-only top_100" "$(metric "$tmp/retrieval.jsonl" top_100)" ">=" 0.22
train joint 1 1
check "joint top_100" "$(metric "$tmp/joint.jsonl" top_100)" ">=" 0.22
check "joint rmse" "$(metric "$tmp/joint.jsonl" rmse)" "<=" 1.25

# ---- serving the joint model
if "$bin/mtrun" "$tmp/joint.bin" predict --user 42 --item "Dances with Wolves (1990)" \
  >"$tmp/predict" 2>&1; then
  # One line: a label, a tab and a finite number (not nan or inf).
  if [ "$(wc -l <"$tmp/predict")" -eq 1 ] &&
    awk -F'\t' 'NF == 2 && $2 ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ { ok = 1 }
                END { exit !ok }' "$tmp/predict"; then
    echo "  ok   predict: $(cat "$tmp/predict")"
  else
    fail "predict did not print one finite rating: '$(cat "$tmp/predict")'"
  fi
else
  fail "predict failed: $(cat "$tmp/predict")"
fi
if "$bin/mtrun" "$tmp/joint.bin" recommend --user 42 -k 10 >"$tmp/recommend" 2>&1; then
  n=$(wc -l <"$tmp/recommend")
  if [ "$n" -eq 10 ] && awk -F'\t' '$1 != NR || NF < 3 { bad = 1 } END { exit bad }' "$tmp/recommend"; then
    echo "  ok   recommend: 10 lines, first: $(head -n 1 "$tmp/recommend")"
  else
    fail "recommend -k 10 printed $n lines, expected 10 ranked lines:"
    cat "$tmp/recommend" >&2
  fi
else
  fail "recommend failed: $(cat "$tmp/recommend")"
fi

# ---- determinism: the joint run again, same seed, same threads
cp "$tmp/joint.jsonl" "$tmp/joint1.jsonl"
cp "$tmp/joint.bin" "$tmp/joint1.bin"
train joint 1 1 >/dev/null
# Without --timings the metrics hold no wall times: the files must be equal
# byte for byte.
cp "$tmp/joint1.jsonl" "$tmp/a.jsonl"
cp "$tmp/joint.jsonl" "$tmp/b.jsonl"
if [ "$(grep -c '"phase":"train"' "$tmp/a.jsonl")" -ne 3 ]; then
  fail "expected 3 train lines in the metrics"
elif cmp -s "$tmp/a.jsonl" "$tmp/b.jsonl"; then
  echo "  ok   two joint runs: byte-identical metrics"
else
  fail "two joint runs at seed 42 gave different metrics:"
  diff "$tmp/a.jsonl" "$tmp/b.jsonl" >&2 || true
fi
if cmp "$tmp/joint1.bin" "$tmp/joint.bin"; then
  echo "  ok   two joint runs: byte-identical saved models"
else
  fail "two joint runs at seed 42 saved different models"
fi

if [ "$failures" -ne 0 ]; then
  echo "e2e_tutorial_heavy: $failures checks failed" >&2
  exit 1
fi
echo "e2e_tutorial_heavy: ok"
