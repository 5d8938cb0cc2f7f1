#!/usr/bin/env bash
# End-to-end on MovieLens 100K: five-fold cross-validation on the data set's
# own folds u1..u5 (`mtrun MODEL cv --folds u1,u2,u3,u4,u5`).
#
# Skipped (exit 77) unless $MTR_DATA names a folder holding u1.base. Compiles
# models/movielens.mtr (3 epochs, batch 8192, seed 42), --threads 1, and runs:
#   rating only (retrieval.weight=0): every fold's RMSE is finite, and the
#     mean RMSE is in [0.85, 1.16]. Measured: 1.1153 (folds 1.10-1.14); a
#     model that predicts the training mean scores 1.1256 on these folds, and
#     Surprise's SVD about 0.94: three epochs of 8192-row batches leave this
#     model close to the mean, so the upper bound catches a broken rating
#     path (predicting 0 scores ~3.7), not a small regression; the lower
#     bound catches test rows leaking into training.
#   joint (both weights 1): every fold's top_100 >= 0.15 and the mean >= 0.20.
#     Measured: 0.2381 (folds 0.219-0.249); chance is 100/1682 = 0.06, and the
#     rating-only run scores 0.06.
# Both runs also check the JSON lines: 5 fold lines named u1..u5, a mean and
# a std line. Prints both tables and the mean-predictor's RMSE per fold.
# About 15 s in a release build.
# Env: MTR_DATA, MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun).
set -euo pipefail

if [ -z "${MTR_DATA:-}" ] || [ ! -f "$MTR_DATA/u1.base" ]; then
  echo "e2e_cv_heavy: skipped: set MTR_DATA to a MovieLens 100K folder (with u1.base .. u5.test)"
  exit 77
fi
src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
folds=u1,u2,u3,u4,u5

fail() {
  echo "e2e_cv_heavy: FAIL: $*" >&2
  failures=$((failures + 1))
}

# field LINE NAME: the value of numeric field NAME in a flat JSON line ("" if
# absent; "null" for a non-finite value).
field() {
  printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([-0-9.eE+]*\|null\).*/\1/p"
}

# check WHAT VALUE OP LIMIT: records a failure unless VALUE is a number and
# VALUE OP LIMIT.
check() {
  local what="$1" value="$2" op="$3" limit="$4"
  if ! printf '%s' "$value" | grep -qE '^-?[0-9.]+([eE][-+]?[0-9]+)?$'; then
    fail "$what = '$value' is not a finite number"
  elif ! awk -v v="$value" -v l="$limit" "BEGIN { exit !(v $op l) }"; then
    fail "$what = $value, expected $op $limit"
  fi
}

# cv NAME ARGS...: cross-validation over the five folds; the table to stdout,
# JSON lines to NAME.jsonl; checks the JSON lines' shape.
cv() {
  local name="$1"
  shift
  echo "== $name"
  "$bin/mtrun" "$tmp/model.bin" cv --data "$MTR_DATA" --folds "$folds" --threads 1 --quiet \
    --metrics "$tmp/$name.jsonl" "$@" || {
    fail "$name: mtrun cv exited $?"
    return 0
  }
  local got
  got="$(grep '"phase":"cv"' "$tmp/$name.jsonl" |
    sed -n 's/.*"name":"\([^"]*\)".*/\1/p; s/.*"statistic":"\([^"]*\)".*/\1/p' | paste -sd, -)" || true
  [ "$got" = "$folds,mean,std" ] || fail "$name: cv JSON lines are $got, expected $folds,mean,std"
}

# The mean line's NAME, and every fold line's NAME (one per line).
mean_of() { field "$(grep '"statistic":"mean"' "$tmp/$1.jsonl" || true)" "$2"; }
folds_of() {
  { grep '"phase":"cv","fold"' "$tmp/$1.jsonl" || true; } | while IFS= read -r line; do field "$line" "$2"; done
}

"$bin/mtrc" "$src/models/movielens.mtr" -o "$tmp/model.bin"
start=$SECONDS

cv rating --set rating.weight=1 --set retrieval.weight=0
n=0
for v in $(folds_of rating rmse); do
  n=$((n + 1))
  check "rating only: fold $n rmse" "$v" ">" 0
done
[ "$n" = 5 ] || fail "rating only: $n fold rmse values, expected 5"
check "rating only: mean rmse" "$(mean_of rating rmse)" ">=" 0.85
check "rating only: mean rmse" "$(mean_of rating rmse)" "<=" 1.16

cv joint --set rating.weight=1 --set retrieval.weight=1
n=0
for v in $(folds_of joint top_100); do
  n=$((n + 1))
  check "joint: fold $n top_100" "$v" ">=" 0.15
done
[ "$n" = 5 ] || fail "joint: $n fold top_100 values, expected 5"
check "joint: mean top_100" "$(mean_of joint top_100)" ">=" 0.20

echo "== for comparison: predicting the training rows' mean rating"
for f in ${folds//,/ }; do
  awk -F'\t' -v f="$f" 'NR == FNR { s += $3; n++; next }
    { d = $3 - s / n; q += d * d; k++ }
    END { printf "%s  rmse %.4f\n", f, sqrt(q / k) }' "$MTR_DATA/$f.base" "$MTR_DATA/$f.test"
done
echo "two cv runs in $((SECONDS - start)) s"

if [ "$failures" -gt 0 ]; then
  echo "e2e_cv_heavy: $failures check(s) failed" >&2
  exit 1
fi
echo "e2e_cv_heavy: ok"
