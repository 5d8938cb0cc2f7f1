#!/usr/bin/env bash
# End-to-end: training on given split files (--train/--test), file-order
# batches and the step log (--order file, --step-log), starting from exported
# parameters (--init), and cross-validation (cv --folds).
#
# Data: a small generic folder written here by a seeded python3 generator:
# 40 users in 4 groups, 40 items in 4 groups of 10; each user rates 8 distinct
# items of its own group with a planted generosity (3, 4 or 5 stars, one star
# less in 1 of 10). Each user's first 6 rows go to train.csv, the last 2 to
# test.csv (no (user, item) pair in both); f1 is that split, f2 takes each
# user's first 2 rows for testing. Model: the tutorial's, shrunk (embedding(8),
# dense(16, relu) -> dense(1), batch 32, 5 epochs).
# Checks:
#   (a) a given split reports "N training rows, M test rows" = the files' rows;
#   (b) --order file --step-log: epochs * ceil(n_train / batch) step lines,
#       steps 1.. in order, every key (loss, each <task>.loss, a grad_norm for
#       every parameter of `mtrun info`), full batches but the last of each
#       epoch (n_train mod batch); two runs give byte-identical logs; the first
#       step's losses do not change when the first batch's rows are reversed in
#       the file, and do with the default (shuffled) order;
#   (c) the same run twice: byte-identical --metrics files and
#       byte-identical saved models;
#   (d) --init from `export` of a trained model with train.epochs=0 gives the
#       test metrics of `eval` of that model (and differs without --init);
#   (e) test rows with users and items not in the data: the count on stderr;
#   (f) a test file sharing rows with the training file: the warning and count,
#       and no warning for a clean split;
#   (g) a missing --test or --train file: exit 1, the error names the file;
#   (h) cv --folds f1,f2: the table has both fold columns, mean and std; the
#       JSON has 2 fold lines, then mean and std equal to the mean and sample
#       standard deviation of the fold values (to 1e-9); each fold's metrics
#       equal those of a single run on that fold's files (fresh parameters per
#       fold); a missing fold is an error naming DIR/NAME.base.
# Runs in a few seconds, also under the sanitizers (a sanitizer report fails).
# Needs python3 (scripts/install-deps installs it).
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (folder with mtrc, mtrun).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
mtrun="$bin/mtrun"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0

fail() {
  echo "e2e_splits: FAIL: $*" >&2
  failures=$((failures + 1))
}

command -v python3 >/dev/null || {
  echo "e2e_splits: FAIL: python3 is needed (scripts/install-deps)" >&2
  exit 1
}

# ---- data and model ----------------------------------------------------------
data="$tmp/data"
mkdir -p "$data"
python3 - "$data" 7 <<'PY'
import os, random, sys

out, rng = sys.argv[1], random.Random(int(sys.argv[2]))
groups, per_group, users, per_user = 4, 10, 40, 8
header = "user_id,movie_title,user_rating\n"
by_user = []
for u in range(users):
    g, generosity = u % groups, 3 + (u // groups) % 3
    rows = []
    for i in rng.sample(range(per_group), per_user):
        r = generosity - 1 if rng.random() < 0.1 else generosity
        rows.append("user_%02d,item_g%d_%d,%d\n" % (u, g, i, r))
    by_user.append(rows)

def write(name, pick):
    with open(os.path.join(out, name), "w") as f:
        f.write(header)
        for rows in by_user:
            f.writelines(pick(rows))

write("interactions.csv", lambda r: r)
write("train.csv", lambda r: r[:6])
write("test.csv", lambda r: r[6:])
write("f1.base", lambda r: r[:6])
write("f1.test", lambda r: r[6:])
write("f2.base", lambda r: r[2:])
write("f2.test", lambda r: r[:2])
with open(os.path.join(out, "items.csv"), "w") as f:
    f.write("movie_title\n")
    for g in range(groups):
        for i in range(per_group):
            f.write("item_g%d_%d\n" % (g, i))
PY

cat >"$tmp/splits.mtr" <<'MTR'
# The tutorial's model, shrunk for a small generated data set (tests only).
model splits

input user_id     : string
input movie_title : string
label user_rating : float

tower user  = user_id     -> lookup -> embedding(8)
tower movie = movie_title -> lookup -> embedding(8)

head rating = concat(user, movie) -> dense(16, relu) -> dense(1)

task rating    = ranking(rating, user_rating) loss mse metrics rmse weight 1.0
task retrieval = retrieval(user, movie) metrics top_k(1, 5, 10) weight 1.0

train {
  optimizer adagrad(lr = 0.1)
  batch 32
  epochs 5
  seed 42
  split 0.8
}
MTR
batch=32
epochs=5
"$bin/mtrc" "$tmp/splits.mtr" -o "$tmp/model.bin"
"$mtrun" "$tmp/model.bin" info >"$tmp/info"
# The parameters' names, from the "parameters:" section of `info`.
params="$(awk '/^parameters:/ { on = 1; next } /^[a-z]/ { on = 0 }
               on && $3 == "param" { print $1 }' "$tmp/info")"
[ -n "$params" ] || fail "info lists no parameters"

rows() { echo $(($(wc -l <"$1") - 1)); }
n_train="$(rows "$data/train.csv")"
n_test="$(rows "$data/test.csv")"

# run NAME ARGS...: mtrun on model.bin with the folder and --quiet; stdout to
# NAME.out, stderr to NAME.err, the exit status to NAME.rc. Fails on a
# sanitizer report.
run() {
  local name="$1" rc=0
  shift
  "$mtrun" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
  echo "$rc" >"$tmp/$name.rc"
  if grep -qE 'Sanitizer|runtime error:' "$tmp/$name.err"; then
    fail "$name: sanitizer report:"
    cat "$tmp/$name.err" >&2
  fi
}
status() { cat "$tmp/$1.rc"; }

# ok NAME: the run NAME exited 0 (else a failure with its stderr).
ok() {
  [ "$(status "$1")" = 0 ] && return 0
  fail "$1: exit $(status "$1"): $(head -c 400 "$tmp/$1.err")"
  return 1
}

given=(--data "$data" --train "$data/train.csv" --test "$data/test.csv" --threads 1 --quiet)

# ---- (a) a given split -------------------------------------------------------
run a "$tmp/model.bin" "${given[@]}"
if ok a; then
  line="$(grep -E '[0-9]+ training rows, [0-9]+ test rows' "$tmp/a.out" || true)"
  got="$(printf '%s\n' "$line" | sed -n 's/.* \([0-9]*\) training rows, \([0-9]*\) test rows.*/\1 \2/p')"
  [ "$got" = "$n_train $n_test" ] ||
    fail "(a) expected '$n_train training rows, $n_test test rows', got '$line'"
  grep -q 'not in the vocabulary\|also appear' "$tmp/a.err" &&
    fail "(a/f) a clean split printed: $(cat "$tmp/a.err")"
fi

# ---- (b) --order file and --step-log -----------------------------------------
run b1 "$tmp/model.bin" "${given[@]}" --order file --step-log "$tmp/b1.steps"
run b2 "$tmp/model.bin" "${given[@]}" --order file --step-log "$tmp/b2.steps"
if ok b1 && ok b2; then
  cmp -s "$tmp/b1.steps" "$tmp/b2.steps" || fail "(b) two --order file runs wrote different step logs"
  python3 - "$tmp/b1.steps" "$n_train" "$batch" "$epochs" "$params" <<'PY' || fail "(b) step log"
import json, math, sys

path, n, batch, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
params = sys.argv[5].split()
per_epoch = math.ceil(n / batch)
lines = [json.loads(l) for l in open(path)]
bad = []
if len(lines) != epochs * per_epoch:
    bad.append("%d step lines, expected %d x ceil(%d / %d) = %d"
               % (len(lines), epochs, n, batch, epochs * per_epoch))
keys = ["phase", "step", "epoch", "batch", "loss", "rating.loss", "retrieval.loss"]
keys += ["grad_norm." + p for p in params]
for i, s in enumerate(lines):
    missing = [k for k in keys if k not in s]
    if missing:
        bad.append("step line %d lacks %s" % (i + 1, ", ".join(missing)))
        break
    e, b = i // per_epoch + 1, i % per_epoch
    want = batch if b < per_epoch - 1 else n - batch * (per_epoch - 1)
    if (s["phase"], s["step"], s["epoch"], s["batch"]) != ("step", i + 1, e, want):
        bad.append("step line %d: phase %s step %s epoch %s batch %s, expected step %d epoch %d batch %d"
                   % (i + 1, s["phase"], s["step"], s["epoch"], s["batch"], i + 1, e, want))
        break
    for k in keys[4:]:
        if not isinstance(s[k], (int, float)) or not math.isfinite(s[k]):
            bad.append("step line %d: %s = %r is not a finite number" % (i + 1, k, s[k]))
if lines and n % batch and lines[-1]["batch"] != n % batch:
    bad.append("the last step's batch is %s, expected %d mod %d = %d"
               % (lines[-1]["batch"], n, batch, n % batch))
for b in bad:
    print("e2e_splits: (b) " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
fi
# File order: reversing the rows of the first batch in the file leaves the
# first step's losses as they were (the same rows, the same parameters); with
# the default seeded shuffle the first batch holds other rows.
{
  head -n 1 "$data/train.csv"
  sed -n "2,$((batch + 1))p" "$data/train.csv" | tac
  tail -n +"$((batch + 2))" "$data/train.csv"
} >"$tmp/reversed.csv"
rev=(--data "$data" --train "$tmp/reversed.csv" --test "$data/test.csv" --threads 1 --quiet)
run b3 "$tmp/model.bin" "${rev[@]}" --order file --step-log "$tmp/b3.steps"
run b4 "$tmp/model.bin" "${given[@]}" --step-log "$tmp/b4.steps"
run b5 "$tmp/model.bin" "${rev[@]}" --step-log "$tmp/b5.steps"
# close FILE1 FILE2: the first step's loss and task losses agree to 1e-6 (relative).
close() {
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.loads(open(p).readline()) for p in sys.argv[1:3])
keys = ["loss", "rating.loss", "retrieval.loss"]
sys.exit(0 if all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(a[k])) for k in keys) else 1)
PY
}
if ok b1 && ok b3 && ok b4 && ok b5; then
  close "$tmp/b1.steps" "$tmp/b3.steps" ||
    fail "(b) --order file: reversing the first batch's rows changed step 1: $(head -n 1 "$tmp/b1.steps" | cut -c 1-120) vs $(head -n 1 "$tmp/b3.steps" | cut -c 1-120)"
  close "$tmp/b4.steps" "$tmp/b5.steps" &&
    fail "(b) the default order gives the same first step for two orders of the file: it is not shuffled"
fi

# ---- (c) determinism ---------------------------------------------------------
run c1 "$tmp/model.bin" "${given[@]}" --metrics "$tmp/c1.jsonl" -o "$tmp/c1.bin"
run c2 "$tmp/model.bin" "${given[@]}" --metrics "$tmp/c2.jsonl" -o "$tmp/c2.bin"
if ok c1 && ok c2; then
  [ "$(grep -c '"phase":"test"' "$tmp/c1.jsonl")" = 1 ] || fail "(c) no test line in --metrics"
  [ "$(grep -c '"phase":"train"' "$tmp/c1.jsonl")" = "$epochs" ] ||
    fail "(c) expected $epochs train lines in --metrics"
  cmp -s "$tmp/c1.jsonl" "$tmp/c2.jsonl" ||
    fail "(c) the same run twice wrote different metrics: $(diff "$tmp/c1.jsonl" "$tmp/c2.jsonl" | head -n 4)"
  cmp -s "$tmp/c1.bin" "$tmp/c2.bin" || fail "(c) the same run twice saved different models"
fi

# ---- (d) --init from an export -----------------------------------------------
test_line() { grep '"phase":"test"' "$1"; }
if ok c1; then
  run d_export "$tmp/c1.bin" export "$tmp/exported"
  run d_eval "$tmp/c1.bin" eval "${given[@]}" --metrics "$tmp/d_eval.jsonl"
  run d_init "$tmp/model.bin" "${given[@]}" --init "$tmp/exported" --set train.epochs=0 \
    --metrics "$tmp/d_init.jsonl"
  run d_none "$tmp/model.bin" "${given[@]}" --set train.epochs=0 --metrics "$tmp/d_none.jsonl"
  if ok d_export && ok d_eval && ok d_init && ok d_none; then
    [ "$(test_line "$tmp/d_eval.jsonl")" = "$(test_line "$tmp/c1.jsonl")" ] ||
      fail "(d) eval of the trained model differs from its training run's test line"
    [ "$(test_line "$tmp/d_init.jsonl")" = "$(test_line "$tmp/d_eval.jsonl")" ] ||
      fail "(d) --init + 0 epochs: $(test_line "$tmp/d_init.jsonl"), eval of the trained model: $(test_line "$tmp/d_eval.jsonl")"
    [ "$(test_line "$tmp/d_none.jsonl")" != "$(test_line "$tmp/d_eval.jsonl")" ] ||
      fail "(d) an untrained model scores like the trained one: the --init check proves nothing"
  fi
fi

# ---- (e) out-of-vocabulary test values ---------------------------------------
# 2 unknown users, 1 unknown item, 1 row with both: 5 values.
{
  cat "$data/test.csv"
  echo "user_new1,item_g0_1,4"
  echo "user_new2,item_g1_1,4"
  echo "user_00,item_new1,3"
  echo "user_new3,item_new2,5"
} >"$tmp/oov.csv"
run e "$tmp/model.bin" --data "$data" --train "$data/train.csv" --test "$tmp/oov.csv" --threads 1 --quiet
if ok e; then
  grep -q '^mtrun: 5 test values are not in the vocabulary' "$tmp/e.err" ||
    fail "(e) expected '5 test values are not in the vocabulary' on stderr, got: $(cat "$tmp/e.err")"
  grep -q " $((n_test + 4)) test rows" "$tmp/e.out" ||
    fail "(e) the out-of-vocabulary rows are not counted as test rows: $(grep 'rows' "$tmp/e.out")"
fi

# ---- (f) train and test overlap ----------------------------------------------
{
  cat "$data/test.csv"
  sed -n '2,8p' "$data/train.csv"
} >"$tmp/overlap.csv"
run f "$tmp/model.bin" --data "$data" --train "$data/train.csv" --test "$tmp/overlap.csv" --threads 1 --quiet
if ok f; then
  grep -q '^mtrun: warning: 7 test rows also appear in the training file' "$tmp/f.err" ||
    fail "(f) expected 'warning: 7 test rows also appear in the training file', got: $(cat "$tmp/f.err")"
fi

# ---- (g) a missing split file ------------------------------------------------
run g1 "$tmp/model.bin" --data "$data" --train "$data/train.csv" --test "$tmp/no-such-test.csv" --quiet \
  --metrics "$tmp/g1.jsonl" --step-log "$tmp/g1.steps"
run g2 "$tmp/model.bin" --data "$data" --train "$tmp/no-such-train.csv" --test "$data/test.csv" --quiet
for g in g1 g2; do
  want="$tmp/no-such-$([ $g = g1 ] && echo test || echo train).csv"
  [ "$(status $g)" = 1 ] || fail "(g) a missing file: exit $(status $g), expected 1"
  grep -qF "mtrun: error: $want" "$tmp/$g.err" ||
    fail "(g) the error does not name $want: $(cat "$tmp/$g.err")"
done
# a failed run leaves none of its output files, not even a temporary one
if ls "$tmp"/g1.jsonl* "$tmp"/g1.steps* >/dev/null 2>&1; then
  fail "(g) a failed run left output files: $(ls "$tmp"/g1.*)"
fi

# ---- (f2) unknown values do not count as overlap -----------------------------
# Every unknown value has the out-of-vocabulary id, so two unknown users who
# rated one item must not look like the same row.
{
  echo "user_id,movie_title,user_rating"
  echo "ghost_a,item_g0_1,4"
  sed -n '2,40p' "$data/train.csv"
} >"$tmp/ghost_train.csv"
{
  echo "user_id,movie_title,user_rating"
  echo "ghost_b,item_g0_1,4"
  echo "ghost_c,item_g0_1,3"
} >"$tmp/ghost_test.csv"
run f2 "$tmp/model.bin" --data "$data" --train "$tmp/ghost_train.csv" --test "$tmp/ghost_test.csv" \
  --threads 1 --quiet
if ok f2; then
  ! grep -q 'also appear in the training file' "$tmp/f2.err" ||
    fail "(f2) unknown users were counted as overlap: $(cat "$tmp/f2.err")"
  grep -q '^mtrun: 1 training values are not in the vocabulary' "$tmp/f2.err" ||
    fail "(f2) the unknown training user was not reported: $(cat "$tmp/f2.err")"
fi

# ---- (h) cross-validation ----------------------------------------------------
run h "$tmp/model.bin" cv --data "$data" --folds f1,f2 --threads 1 --quiet --metrics "$tmp/h.jsonl"
run h1 "$tmp/model.bin" --data "$data" --train "$data/f1.base" --test "$data/f1.test" --threads 1 \
  --quiet --metrics "$tmp/h1.jsonl"
run h2 "$tmp/model.bin" --data "$data" --train "$data/f2.base" --test "$data/f2.test" --threads 1 \
  --quiet --metrics "$tmp/h2.jsonl"
if ok h && ok h1 && ok h2; then
  cat "$tmp/h.out"
  grep -qE '^metric +f1 +f2 +mean +std *$' "$tmp/h.out" ||
    fail "(h) the cv table's header is not 'metric f1 f2 mean std'"
  for metric in rmse top_1 top_5 top_10; do
    grep -qE "^$metric( +-?[0-9]+\.[0-9]+){4} *\$" "$tmp/h.out" ||
      fail "(h) the cv table has no row '$metric' with 2 folds, mean and std"
  done
  python3 - "$tmp/h.jsonl" "$tmp/h1.jsonl" "$tmp/h2.jsonl" <<'PY' || fail "(h) cv JSON lines"
import json, math, sys

cv = [json.loads(l) for l in open(sys.argv[1]) if '"phase":"cv"' in l]
single = [[json.loads(l) for l in open(p) if '"phase":"test"' in l][0] for p in sys.argv[2:4]]
bad = []
head = [(c.get("fold"), c.get("name"), c.get("statistic")) for c in cv]
if head != [(1, "f1", None), (2, "f2", None), (None, None, "mean"), (None, None, "std")]:
    bad.append("expected the cv lines fold 1 f1, fold 2 f2, mean, std; got %s" % head)
else:
    folds, mean, std = cv[0:2], cv[2], cv[3]
    names = [k for k in folds[0] if k not in ("phase", "fold", "name")]
    if sorted(names) != sorted(["rmse", "top_1", "top_5", "top_10"]):
        bad.append("the fold lines hold %s" % names)
    for k in names:
        v = [f[k] for f in folds]
        m = sum(v) / len(v)
        s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))
        if abs(mean.get(k, math.inf) - m) > 1e-9:
            bad.append("mean %s = %s, the folds' mean is %r" % (k, mean.get(k), m))
        if abs(std.get(k, math.inf) - s) > 1e-9:
            bad.append("std %s = %s, the folds' sample std is %r" % (k, std.get(k), s))
        for i, one in enumerate(single):
            if one.get(k) != folds[i][k]:
                bad.append("fold %d %s = %r, a single run on f%d's files gives %r"
                           % (i + 1, k, folds[i][k], i + 1, one.get(k)))
for b in bad:
    print("e2e_splits: (h) " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
fi
run h_missing "$tmp/model.bin" cv --data "$data" --folds f1,f9 --threads 1 \
  --metrics "$tmp/h_missing.jsonl"
[ "$(status h_missing)" = 1 ] || fail "(h) cv with a missing fold: exit $(status h_missing), expected 1"
grep -qF "$data/f9.base" "$tmp/h_missing.err" ||
  fail "(h) cv with a missing fold: the error does not name $data/f9.base: $(cat "$tmp/h_missing.err")"
# the fold files are checked before any training (without --quiet, training
# would print its epoch lines), and nothing is written
! grep -q 'epoch 1/' "$tmp/h_missing.err" || fail "(h) cv trained fold f1 before finding f9 missing"
if ls "$tmp"/h_missing.jsonl* >/dev/null 2>&1; then fail "(h) a failed cv left its metrics file"; fi
# cv takes the training options: a step log per fold, with the fold number
run h_steps "$tmp/model.bin" cv --data "$data" --folds f1,f2 --threads 1 --quiet \
  --step-log "$tmp/h_steps.jsonl"
if ok h_steps; then
  for fold in 1 2; do
    grep -q "\"fold\":$fold," "$tmp/h_steps.jsonl" ||
      fail "(h) cv --step-log has no step of fold $fold"
  done
fi

if [ "$failures" -gt 0 ]; then
  echo "e2e_splits: $failures check(s) failed" >&2
  exit 1
fi
echo "e2e_splits: ok"
