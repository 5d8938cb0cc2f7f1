#!/usr/bin/env bash
# End-to-end: training control on MovieLens 100K. The short form trains
# esmm.mtr (the quickest model with three tasks) for 2 epochs;
# e2e_control_heavy.sh runs it over every model of models/ for 3
# (MTR_CONTROL_MODELS=all). Each model gets `validation 0.1` and
# `early_stop <its first task's first metric> patience 1`, then:
#   (a) it compiles, trains and serves (predict, and recommend when it has a
#       retrieval task);
#   (b) 10% of the 80000 training rows are held out, the 20000 test rows are
#       the same as without validation, and every epoch run has a "valid" line
#       in --metrics;
#   (c) the epoch the report names is the best "valid" value of the watched
#       metric (lower rmse/log_loss, higher auc/top_k), training stopped at most
#       `patience` epochs after it, and evaluating the saved model gives the
#       test line of the run: -o saved the best epoch's parameters;
#   (d) (heavy form) the same run twice writes byte-identical models and metrics.
# Skipped (exit 77) unless $MTR_DATA names a folder holding u.data.
# Env: MTR_SOURCE_DIR, MTR_BIN_DIR, MTR_DATA.
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
data="${MTR_DATA:-}"
if [ -z "$data" ] || [ ! -f "$data/u.data" ]; then
  echo "e2e_control: skipped: MTR_DATA does not name MovieLens 100K" >&2
  exit 77
fi
mtrc="$bin/mtrc"
mtrun="$bin/mtrun"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
  echo "e2e_control: FAIL: $*" >&2
  failures=$((failures + 1))
}
# serve MODEL OUT ARGS...: mtrun MODEL ARGS... > OUT; a per-row input the
# model does not hold (a timestamp) is named by the error, then given (any
# value serves, a number or a word) and the command run again.
serve() {
  local bin="$1" out="$2" need
  shift 2
  local given=()
  for _ in 1 2 3 4 5; do
    "$mtrun" "$bin" "$@" ${given[@]+"${given[@]}"} >"$out" 2>&1 && return 0
    need=$(sed -n "s/.*a value for '\([^']*\)' is needed.*/\1/p" "$out")
    [ -n "$need" ] || return 1
    given+=(--input "$need=0")
  done
  return 1
}

# with_control MODEL OUT: the model with validation and early_stop in its train
# block; prints the watched target.
with_control() {
  python3 - "$1" "$2" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
task = re.search(r'^task\s+(\w+)\s*=.*?metrics\s+(\w+)(\(([^)]*)\))?', text, re.M)
name, metric = task.group(1), task.group(2)
if metric == 'top_k':
    ks = task.group(4).split(',') if task.group(4) else ['100']
    metric = 'top_' + ks[-1].strip()
lines = '  validation 0.1\n  early_stop %s.%s patience 1\n' % (name, metric)
if re.search(r'^train\s*\{', text, re.M):
    text = re.sub(r'(^train\s*\{[^}]*)\}', lambda m: m.group(1) + lines + '}', text, flags=re.M)
else:
    text += '\ntrain {\n' + lines + '}\n'
open(sys.argv[2], 'w').write(text)
print(name + '.' + metric)
PY
}

if [ "${MTR_CONTROL_MODELS:-}" = all ]; then
  models=("$src"/models/*.mtr)
  epochs=3
else
  models=("$src/models/esmm.mtr")
  epochs=2
fi
n=0
for model in "${models[@]}"; do
  base="$(basename "$model" .mtr)"
  dir="$tmp/$base"
  mkdir -p "$dir"
  target="$(with_control "$model" "$dir/m.mtr")"
  if ! "$mtrc" "$dir/m.mtr" -o "$dir/m.bin" 2>"$dir/err"; then
    fail "$base: does not compile with validation and early_stop: $(head -3 "$dir/err")"
    continue
  fi
  if ! "$mtrun" "$dir/m.bin" --data "$data" --quiet --set train.epochs="$epochs" --metrics "$dir/m.jsonl" -o "$dir/t.bin" \
    >"$dir/out" 2>"$dir/err"; then
    fail "$base: training failed: $(head -3 "$dir/err")"
    continue
  fi
  n=$((n + 1))
  grep -q "72000 training rows, 20000 test rows" "$dir/out" ||
    fail "$base: not 72000 training and 20000 test rows: $(head -1 "$dir/out")"
  grep -q "^validation: 8000 training rows held out" "$dir/out" ||
    fail "$base: no hold-out line"
  grep -q "^early stopping: kept epoch " "$dir/out" || fail "$base: no early-stopping line"
  python3 - "$dir/m.jsonl" "$target" "$dir/out" "$epochs" <<'PY' || fail "$base: early stopping (c)"
import json, re, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
task, metric = sys.argv[2].split('.', 1)
valid = [l for l in lines if l['phase'] == 'valid']
train = [l for l in lines if l['phase'] == 'train']
test = [l for l in lines if l['phase'] == 'test']
assert len(valid) == len(train) >= 1, 'one valid line per epoch'
assert [l['epoch'] for l in valid] == list(range(1, len(valid) + 1))
key = sys.argv[2] if sys.argv[2] in valid[0] else metric
vals = [l[key] for l in valid]
lower = metric in ('rmse', 'mae', 'mse', 'log_loss')
best = (min if lower else max)(range(len(vals)), key=lambda i: vals[i]) + 1
assert test[0]['best_epoch'] == best, (test[0]['best_epoch'], best, vals)
assert len(valid) == int(sys.argv[4]) or len(valid) == best + 1, 'stopped one epoch (patience) after the best'
out = open(sys.argv[3]).read()
m = re.search(r'early stopping: kept epoch (\d+) of (\d+)', out)
assert int(m.group(1)) == best and int(m.group(2)) == len(valid), m.group(0)
PY
  # (c) the saved model is the best epoch's: its evaluation is the run's test line
  "$mtrun" "$dir/t.bin" eval --data "$data" --quiet --metrics "$dir/e.jsonl" >/dev/null
  grep '"phase":"test"' "$dir/m.jsonl" | sed 's/"best_epoch":[0-9]*,//' >"$dir/t1"
  grep '"phase":"test"' "$dir/e.jsonl" >"$dir/t2"
  cmp -s "$dir/t1" "$dir/t2" || fail "$base: the saved model's test line differs from the run's"
  # (a) serving
  serve "$dir/t.bin" "$dir/p" predict --user 42 --item "Dances with Wolves (1990)" ||
    grep -q "no ranking task" "$dir/p" || fail "$base: predict failed: $(head -2 "$dir/p")"
  if grep -q "retrieval(" "$model"; then
    serve "$dir/t.bin" "$dir/r" recommend --user 42 -k 3 ||
      fail "$base: recommend failed: $(head -2 "$dir/r")"
    [ "$(wc -l <"$dir/r")" -eq 3 ] || fail "$base: recommend did not list 3 items"
  fi
done
[ "$n" -eq "${#models[@]}" ] || fail "only $n of ${#models[@]} models trained"

# (b) the test rows do not depend on validation; (d) determinism
tut="$tmp/esmm"
"$mtrc" "$src/models/esmm.mtr" -o "$tmp/plain.bin"
"$mtrun" "$tmp/plain.bin" --data "$data" --quiet --set train.epochs=0 >"$tmp/plain.out"
grep -q "80000 training rows, 20000 test rows" "$tmp/plain.out" || fail "the plain split changed"
if [ "${MTR_CONTROL_MODELS:-}" = all ]; then
  "$mtrun" "$tut/m.bin" --data "$data" --quiet --set train.epochs="$epochs" --metrics "$tut/m2.jsonl" \
    -o "$tut/t2.bin" >/dev/null
  cmp -s "$tut/m.jsonl" "$tut/m2.jsonl" || fail "two runs wrote different metrics"
  cmp -s "$tut/t.bin" "$tut/t2.bin" || fail "two runs saved different models"
fi

if [ "$failures" -gt 0 ]; then
  echo "e2e_control: $failures failure(s)" >&2
  exit 1
fi
echo "e2e_control: $n models trained with validation and early stopping, and served"
