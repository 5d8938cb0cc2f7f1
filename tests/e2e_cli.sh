#!/usr/bin/env bash
# End-to-end: every user error on the command line gets a clear message on
# stderr, a non-zero exit status (2 for a wrong command line, 1 for a bad
# model, data or file) and loses nothing: no output file is created, cut short
# or changed by a run that fails. Also: `mtrun MODEL set` rewrites a knob.
#
# Covers: bad flags (mtrun and mtrc), an unknown command, bad --set keys and
# values, a missing data folder, a malformed data line (file:line), truncated
# and bit-flipped model files (the message names the section; no crash),
# `set` and a bad `set`, -o into a missing folder, predict/recommend with an
# unknown user or item, recommend -k 0.
# Data: the small planted set of tests/gen_planted.sh. Runs in a few seconds,
# also under the sanitizers (a sanitizer report fails the test).
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (folder with mtrc, mtrun).
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
  echo "e2e_cli: FAIL: $*" >&2
  failures=$((failures + 1))
}

# expect STATUS REGEX CMD...: runs CMD; passes when it exits with STATUS
# ("nonzero" accepts 1 or 2) without a crash, and its stderr matches the
# extended REGEX (an empty REGEX: stderr is empty) and holds no sanitizer
# report.
expect() {
  local want="$1" regex="$2" rc=0
  shift 2
  checks=$((checks + 1))
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  local what="'$*'"
  if grep -qE 'Sanitizer|runtime error:' "$tmp/err"; then
    fail "$what: sanitizer report:"
    cat "$tmp/err" >&2
    return 0
  fi
  if [ "$rc" -ge 128 ]; then
    fail "$what: crashed (status $rc)"
  elif [ "$want" = nonzero ] && [ "$rc" -ne 1 ] && [ "$rc" -ne 2 ]; then
    fail "$what: exit status $rc, expected 1 or 2"
  elif [ "$want" != nonzero ] && [ "$rc" -ne "$want" ]; then
    fail "$what: exit status $rc, expected $want"
  fi
  if [ -z "$regex" ]; then
    if [ -s "$tmp/err" ]; then
      fail "$what: expected no message; stderr was:"
      sed 's/^/    /' "$tmp/err" >&2
    fi
  elif ! grep -qE -- "$regex" "$tmp/err"; then
    fail "$what: stderr does not match /$regex/; it was:"
    sed 's/^/    /' "$tmp/err" >&2
  fi
}

# same FILE COPY WHAT: FILE must still be byte-identical to COPY.
same() {
  checks=$((checks + 1))
  cmp -s "$1" "$2" || fail "$3: $1 was changed"
}

# absent FILE WHAT: FILE must not exist.
absent() {
  checks=$((checks + 1))
  [ ! -e "$1" ] || fail "$2: $1 exists"
}

"$src/tests/gen_planted.sh" "$tmp/p" 7
data="$tmp/p/data"
"$mtrc" "$tmp/p/planted.mtr" -o "$tmp/model.bin"
"$mtrun" "$tmp/model.bin" --data "$data" --threads 1 --quiet -o "$tmp/trained.bin" >/dev/null
cp "$tmp/model.bin" "$tmp/model.orig"
cp "$tmp/trained.bin" "$tmp/trained.orig"

# ---- the command line
expect 2 "unknown option '--bogus'" "$mtrun" "$tmp/model.bin" --bogus
expect 2 "unknown option '--bogus'" "$mtrc" --bogus "$tmp/p/planted.mtr"
expect 2 "nothing to do" "$mtrc" "$tmp/p/planted.mtr"
expect 2 "needs a value" "$mtrun" "$tmp/model.bin" --data
expect 2 "no model given" "$mtrun"
expect 1 "cannot open" "$mtrc" "$tmp/missing.mtr" -o "$tmp/never.bin"
absent "$tmp/never.bin" "mtrc on a missing file"
expect 2 "unknown command 'frobnicate'" "$mtrun" "$tmp/model.bin" frobnicate
expect 2 "threads" "$mtrun" "$tmp/model.bin" --data "$data" --threads 0

# A model error: mtrc writes nothing, not even over an existing file.
sed 's/embedding(8)$/embedding(4)/' "$tmp/p/planted.mtr" | sed '0,/embedding(4)/s//embedding(8)/' \
  >"$tmp/mismatch.mtr"
expect 1 "error: .*same output size" "$mtrc" "$tmp/mismatch.mtr" -o "$tmp/never.bin"
absent "$tmp/never.bin" "mtrc on a model with an error"
cp "$tmp/model.orig" "$tmp/keep.bin"
expect 1 "error:" "$mtrc" "$tmp/mismatch.mtr" -o "$tmp/keep.bin"
same "$tmp/keep.bin" "$tmp/model.orig" "mtrc on a model with an error over an existing file"

# ---- knobs: a bad --set stops before anything is read or written
expect 2 "unknown knob 'unknown.key'" \
  "$mtrun" "$tmp/model.bin" --data "$data" --set unknown.key=1 \
  --metrics "$tmp/never.jsonl" -o "$tmp/never.bin"
expect 2 "train.batch.*'abc'" "$mtrun" "$tmp/model.bin" --data "$data" --set train.batch=abc \
  --metrics "$tmp/never.jsonl" -o "$tmp/never.bin"
expect 2 "rating.weight.*(nan|finite)" \
  "$mtrun" "$tmp/model.bin" --data "$data" --set rating.weight=nan \
  --metrics "$tmp/never.jsonl" -o "$tmp/never.bin"
absent "$tmp/never.bin" "a bad --set"
absent "$tmp/never.jsonl" "a bad --set"
same "$tmp/model.bin" "$tmp/model.orig" "a bad --set"

# ---- a good --set: the run uses it, -o keeps it (docs/cli.md), MODEL is untouched
expect 0 "" "$mtrun" "$tmp/model.bin" --data "$data" --set retrieval.weight=0.5 \
  --set train.epochs=1 --quiet -o "$tmp/setrun.bin"
"$mtrun" "$tmp/setrun.bin" info >"$tmp/setrun.info"
checks=$((checks + 1))
grep -qE '^ *retrieval\.weight += 0\.5 ' "$tmp/setrun.info" ||
  fail "-o after --set: the saved model does not keep retrieval.weight = 0.5"
grep -qE '^ *train\.epochs += 1 ' "$tmp/setrun.info" ||
  fail "-o after --set: the saved model does not keep train.epochs = 1"
same "$tmp/model.bin" "$tmp/model.orig" "a run with --set and -o"

# ---- data
expect 1 "$tmp/nowhere.*(no such|not)" "$mtrun" "$tmp/model.bin" --data "$tmp/nowhere" \
  -o "$tmp/never.bin"
absent "$tmp/never.bin" "a missing data folder"
mkdir "$tmp/bad"
cp "$data/items.csv" "$tmp/bad/"
# Line 5 of the file (header = line 1) gets a rating that is not a number.
awk -F, -v OFS=, 'NR == 5 { $3 = "x" } { print }' "$data/interactions.csv" \
  >"$tmp/bad/interactions.csv"
cp "$tmp/trained.orig" "$tmp/keep.bin"
expect 1 "interactions.csv:5:.*user_rating" "$mtrun" "$tmp/model.bin" --data "$tmp/bad" \
  -o "$tmp/keep.bin"
same "$tmp/keep.bin" "$tmp/trained.orig" "training on malformed data"

# ---- damaged model files: a clear error that names the section, never a crash
size=$(wc -c <"$tmp/trained.orig")
for cut in 0 3 8 16 40 64 200 1000 $((size / 2)) $((size - 100)) $((size - 1)); do
  head -c "$cut" "$tmp/trained.orig" >"$tmp/cut.bin"
  expect 1 "cut\.bin" "$mtrun" "$tmp/cut.bin" info
done
for cut in 200 $((size / 2)) $((size - 1)); do
  head -c "$cut" "$tmp/trained.orig" >"$tmp/cut.bin"
  expect 1 "section" "$mtrun" "$tmp/cut.bin" predict --user user_00 --item item_g0_1
done
# One flipped bit at 40 places spread over the whole file (past the header,
# which names no section): info and recommend must both refuse the file.
for i in $(seq 0 39); do
  off=$((64 + i * (size - 65) / 39))
  cp "$tmp/trained.orig" "$tmp/flip.bin"
  byte=$(od -An -tu1 -j "$off" -N1 "$tmp/flip.bin" | tr -d ' ')
  printf '%b' "$(printf '\\0%o' $((byte ^ 4)))" |
    dd of="$tmp/flip.bin" bs=1 seek="$off" conv=notrunc status=none
  cmp -s "$tmp/flip.bin" "$tmp/trained.orig" && fail "could not flip byte $off"
  expect 1 "section '[^']+'" "$mtrun" "$tmp/flip.bin" info
  if [ $((i % 8)) -eq 0 ]; then
    expect 1 "section" "$mtrun" "$tmp/flip.bin" recommend --user user_00
  fi
done

# ---- mtrun MODEL set: rewrites a knob in place; a bad set changes nothing
cp "$tmp/model.orig" "$tmp/set.bin"
expect 0 "" "$mtrun" "$tmp/set.bin" set retrieval.weight=0.25 train.epochs=2
"$mtrun" "$tmp/set.bin" info >"$tmp/info"
checks=$((checks + 1))
grep -qE '^ *retrieval\.weight += 0\.25 ' "$tmp/info" || fail "set: info does not show retrieval.weight = 0.25"
grep -qE '^ *train\.epochs += 2 ' "$tmp/info" || fail "set: info does not show train.epochs = 2"
cp "$tmp/set.bin" "$tmp/set.before"
expect nonzero "rating.weight.*'abc'" "$mtrun" "$tmp/set.bin" set rating.weight=abc
same "$tmp/set.bin" "$tmp/set.before" "a set with a bad value"
expect nonzero "unknown knob 'nosuch'" "$mtrun" "$tmp/set.bin" set rating.weight=2 nosuch=1
same "$tmp/set.bin" "$tmp/set.before" "a set with a good and a bad knob"
expect nonzero "finite" "$mtrun" "$tmp/set.bin" set rating.weight=inf
same "$tmp/set.bin" "$tmp/set.before" "a set with an infinite weight"
expect 2 "set needs" "$mtrun" "$tmp/set.bin" set
same "$tmp/set.bin" "$tmp/set.before" "a set with no knob"

# ---- outputs into a missing folder leave nothing behind
expect 1 "$tmp/nodir/" "$mtrun" "$tmp/model.bin" --data "$data" --quiet -o "$tmp/nodir/out.bin"
absent "$tmp/nodir" "-o into a missing folder"
checks=$((checks + 1))
[ -z "$(find "$tmp" -maxdepth 1 -name '*.tmp*' -print -quit)" ] || fail "-o left a temporary file"
expect 1 "$tmp/nodir/" "$mtrun" "$tmp/model.bin" --data "$data" --quiet --metrics "$tmp/nodir/m.jsonl"
absent "$tmp/nodir" "--metrics into a missing folder"
expect 1 "$tmp/nodir/" "$mtrc" "$tmp/p/planted.mtr" -o "$tmp/nodir/model.bin"
absent "$tmp/nodir" "mtrc -o into a missing folder"

# ---- serving: unknown user or item, -k 0, an untrained model
expect 1 "unknown user_id 'nobody'" "$mtrun" "$tmp/trained.bin" predict --user nobody --item item_g0_1
expect 1 "unknown movie_title 'no such film'" \
  "$mtrun" "$tmp/trained.bin" predict --user user_00 --item "no such film"
expect 1 "unknown user_id 'nobody'" "$mtrun" "$tmp/trained.bin" recommend --user nobody -k 3
expect 2 "-k.*'0'" "$mtrun" "$tmp/trained.bin" recommend --user user_00 -k 0
printf 'user_id,movie_title\nuser_00,item_g0_1\n' >"$tmp/rows.csv"
expect 2 "takes the inputs from the file" "$mtrun" "$tmp/trained.bin" predict --file "$tmp/rows.csv" \
  --user user_00
expect 1 "no-such-rows.csv" "$mtrun" "$tmp/trained.bin" predict --file "$tmp/no-such-rows.csv" \
  -o "$tmp/preds.csv"
checks=$((checks + 1))
if ls "$tmp"/preds.csv* >/dev/null 2>&1; then fail "a failed predict --file left $(ls "$tmp"/preds.csv*)"; fi
printf 'user_id\n' >"$tmp/norows.csv"
expect 1 "no records" "$mtrun" "$tmp/trained.bin" predict --file "$tmp/norows.csv"
expect 2 "-k.*'-3'" "$mtrun" "$tmp/trained.bin" recommend --user user_00 -k -3
expect 1 "not trained" "$mtrun" "$tmp/model.bin" predict --user user_00 --item item_g0_1

# ---- paper cuts, as a new user meets them
# --data=DIR is the same as --data DIR, and options may come before the model.
"$mtrun" "$tmp/model.bin" --data="$data" --quiet >"$tmp/eq.out" 2>&1 || fail "--data=DIR is refused: $(cat "$tmp/eq.out")"
"$mtrun" --data "$data" --quiet "$tmp/model.bin" >"$tmp/before.out" 2>&1 ||
  fail "options before the model are refused: $(cat "$tmp/before.out")"
checks=$((checks + 2))
# (the first line holds wall times: the results are the lines after it)
same_results() { cmp -s <(tail -n +2 "$1") <(tail -n +2 "$2"); }
same_results "$tmp/eq.out" "$tmp/before.out" || fail "--data=DIR and --data DIR before the model differ"
# stdout starts with the results, not a blank line.
checks=$((checks + 1))
[ -n "$(head -n 1 "$tmp/eq.out")" ] || fail "stdout starts with a blank line"
# MTR_DATA names the data folder when --data does not; --data wins over it.
MTR_DATA="$data" "$mtrun" "$tmp/model.bin" --quiet >"$tmp/env.out" 2>&1 || fail "MTR_DATA is ignored: $(cat "$tmp/env.out")"
checks=$((checks + 1))
same_results "$tmp/eq.out" "$tmp/env.out" || fail "training with MTR_DATA differs from --data"
MTR_DATA="$tmp/no-such-folder" "$mtrun" "$tmp/model.bin" --data "$data" --quiet >/dev/null 2>&1 ||
  fail "--data does not win over MTR_DATA"
expect 2 "needs --data DIR" env -u MTR_DATA "$mtrun" "$tmp/model.bin" eval
# An explicit 'train' command is the default one.
"$mtrun" "$tmp/model.bin" train --data "$data" --quiet >"$tmp/train.out" 2>&1 || fail "'train' command fails"
checks=$((checks + 1))
same_results "$tmp/eq.out" "$tmp/train.out" || fail "'mtrun MODEL train' differs from 'mtrun MODEL'"
# A .mtr source or a command in the model's place says what to do.
expect 1 "is a \.mtr source, not a compiled model: compile it first \(mtrc" \
  "$mtrun" "$tmp/p/planted.mtr" --data "$data"
expect 1 "'train' is a command: the model comes first" "$mtrun" train "$tmp/model.bin" --data "$data"
# -k belongs to recommend: predict (one row or a file) refuses it.
expect 2 "-k is for recommend" "$mtrun" "$tmp/trained.bin" predict --file "$tmp/rows.csv" -k 3
expect 2 "-k is for recommend" "$mtrun" "$tmp/trained.bin" predict --user user_00 --item item_g0_1 -k 3
# recommend on an untrained model says so (not "between 1 and the 0 items").
expect 1 "not trained" "$mtrun" "$tmp/model.bin" recommend --user user_00
expect 1 "not trained" "$mtrun" "$tmp/model.bin" recommend --file "$tmp/rows.csv"
expect 1 "export needs a trained model" "$mtrun" "$tmp/model.bin" export "$tmp/vec" --vectors
expect 1 "column 'user_id' is given twice" "$mtrun" "$tmp/trained.bin" predict --user user_00 \
  --item item_g0_1 --input user_id=user_01
expect 2 "unexpected argument 'extra'" "$mtrun" "$tmp/trained.bin" info extra
expect 2 "--vectors is for export" "$mtrun" "$tmp/trained.bin" info --vectors

# ---- bad values train nothing: each is an error naming the file and line, or
# skipped and counted under --skip-bad
mkdir -p "$tmp/bad"
cp "$data/items.csv" "$tmp/bad/"
sed 's/ loss mse metrics rmse / loss bce metrics auc /' "$tmp/p/planted.mtr" >"$tmp/bce.mtr"
"$mtrc" "$tmp/bce.mtr" -o "$tmp/bce.bin"
expect 1 "interactions.csv:2: user_rating is the label of task 'rating' \(ranking, loss bce\): it must be 0 or 1 \(found '[0-9]'\)" \
  "$mtrun" "$tmp/bce.bin" --data "$data" --quiet
sed 's/^label user_rating : float/label user_rating : int/' "$tmp/p/planted.mtr" >"$tmp/intlabel.mtr"
"$mtrc" "$tmp/intlabel.mtr" -o "$tmp/intlabel.bin"
sed '5s/,[0-9]$/,0.5/' "$data/interactions.csv" >"$tmp/bad/interactions.csv"
expect 1 "bad/interactions.csv:5: user_rating is an int label, but this is not an integer \(found '0.5'\)" \
  "$mtrun" "$tmp/intlabel.bin" --data "$tmp/bad" --quiet
sed 's/^input user_id     : string/input user_id     : int/' "$tmp/p/planted.mtr" >"$tmp/intinput.mtr"
"$mtrc" "$tmp/intinput.mtr" -o "$tmp/intinput.bin"
expect 1 "interactions.csv:2: user_id is an int input, but this is not an integer \(found 'user_00'\)" \
  "$mtrun" "$tmp/intinput.bin" --data "$data" --quiet
sed '7s/,[0-9]$/,abc/' "$data/interactions.csv" >"$tmp/bad/interactions.csv"
expect 1 "bad/interactions.csv:7: user_rating is not a number \(found 'abc'\)" \
  "$mtrun" "$tmp/model.bin" --data "$tmp/bad" --quiet
expect 0 "skipped 1 malformed record$" "$mtrun" "$tmp/model.bin" --data "$tmp/bad" --quiet --skip-bad
checks=$((checks + 1))
grep -q "^planted: 959 training rows" "$tmp/out" || fail "--skip-bad: $(head -n 1 "$tmp/out")"

# A ranking task without metrics reports its test loss (mse: the rmse squared).
sed 's/ loss mse metrics rmse / loss mse /' "$tmp/p/planted.mtr" >"$tmp/nometrics.mtr"
"$mtrc" "$tmp/nometrics.mtr" -o "$tmp/nometrics.bin"
"$mtrun" "$tmp/nometrics.bin" --data "$data" --quiet >"$tmp/nom.out"
"$mtrun" "$tmp/model.bin" --data "$data" --quiet >"$tmp/rmse.out"
checks=$((checks + 1))
loss="$(awk '$1 == "loss" {print $2}' "$tmp/nom.out")"
rmse="$(awk '$1 == "rmse" {print $2}' "$tmp/rmse.out")"
awk -v l="$loss" -v r="$rmse" 'BEGIN { d = l - r * r; exit !(l != "" && d < 1e-3 && d > -1e-3) }' ||
  fail "a task without metrics prints loss '$loss', not the rmse squared ($rmse^2)"

# ---- every option --help lists is one mtrun knows (a documented flag that is
# not parsed would be 'unknown option'); each is given a dummy value
for flag in $("$mtrun" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
  checks=$((checks + 1))
  "$mtrun" "$tmp/model.bin" "$flag" 1 --data "$tmp/no-such-folder" >/dev/null 2>"$tmp/err" || true
  if grep -q "unknown option '$flag'" "$tmp/err"; then fail "mtrun --help lists $flag, which it does not know"; fi
done

# ---- a diverging run stops with a clear error and saves nothing
expect 1 "training diverged.*optimizer.lr" "$mtrun" "$tmp/model.bin" --data "$data" --quiet \
  --set optimizer.lr=1e30 -o "$tmp/diverged.bin"
checks=$((checks + 1))
[ ! -e "$tmp/diverged.bin" ] || fail "a diverged run wrote $tmp/diverged.bin"

# None of the failures above touched the models they read.
same "$tmp/model.bin" "$tmp/model.orig" "the failed runs"
same "$tmp/trained.bin" "$tmp/trained.orig" "the failed runs"

# And the good path still works, so the checks above test the errors only.
expect 0 "" "$mtrun" "$tmp/trained.bin" predict --user user_00 --item item_g0_1
checks=$((checks + 1))
grep -qE '^rating	[0-9.]+$' "$tmp/out" || fail "predict printed '$(cat "$tmp/out")'"

if [ "$failures" -ne 0 ]; then
  echo "e2e_cli: $failures of $checks checks failed" >&2
  exit 1
fi
echo "e2e_cli: ok ($checks checks)"
