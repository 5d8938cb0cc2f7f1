#!/usr/bin/env bash
# End-to-end: saves that leave nothing behind and lose nothing, and standard
# output that is checked (runtime/save.c, docs/cli.md "Saving files").
#
# (a) kill -9 during `set` and during training with -o: the file is always
#     the old or the new valid model, and no temporary file is left;
#     a named temporary file of a process that died is removed by the next save
# (b) two `set`s at once on one file, and an `import` beside a `set`: both
#     changes are in the file
# (c) -o, --metrics, --step-log, predict -o and mtrc -o on a FIFO, a folder or
#     a symbolic link to a device are refused and leave them as they were;
#     a symbolic link to a regular file is followed (the link stays)
# (d) new files get the umask's mode; a replaced model keeps its mode
# (e) a write error (a file size limit) is reported with its reason
# (f) standard output: `> /dev/full` is an error for info, recommend,
#     predict, training's table and mtrc's dumps; `| head` ends quietly
# (g) export is whole or nothing: when one of its files cannot be written,
#     none of the folder's files is new
# Env: MTR_SOURCE_DIR, MTR_BIN_DIR; MTR_SAVE_TRIALS (kills and concurrent
# pairs, default 40 and 20).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
mtrc="$bin/mtrc"
mtrun="$bin/mtrun"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
checks=0
kills="${MTR_SAVE_TRIALS:-40}"
pairs=$((kills / 2))

fail() {
  echo "e2e_saves: FAIL: $*" >&2
  failures=$((failures + 1))
}
check() { checks=$((checks + 1)); }

bash "$src/tests/gen_planted.sh" "$tmp/p" 5 >/dev/null
data="$tmp/p/data"
# A model of about 1 MB, so that a kill can land while it is being written.
sed 's/embedding(8)/embedding(512)/g' "$tmp/p/planted.mtr" >"$tmp/big.mtr"
"$mtrc" "$tmp/big.mtr" -o "$tmp/big.bin"
"$mtrun" "$tmp/big.bin" --data "$data" --quiet --set train.epochs=1 -o "$tmp/trained.bin" >/dev/null
"$mtrun" "$tmp/big.bin" --data "$data" --quiet --set train.epochs=1 --set train.seed=7 \
  -o "$tmp/other.bin" >/dev/null
"$mtrc" "$tmp/p/planted.mtr" -o "$tmp/small.bin"

knob() { # knob MODEL NAME: the knob's value as `info` prints it
  "$mtrun" "$1" info | awk -v k="$2" '$1 == k && $2 == "=" {print $3; exit}'
}

same() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 == b + 0 && a != "") }'; }

# ---- (a) kill -9 during set and during -o -----------------------------------
mkdir "$tmp/k"
cp "$tmp/trained.bin" "$tmp/k/m.bin"
valid=0
for i in $(seq 1 "$kills"); do
  if [ $((i % 2)) = 1 ]; then
    "$mtrun" "$tmp/k/m.bin" set "rating.weight=0.$i" 2>/dev/null &
  else
    "$mtrun" "$tmp/k/m.bin" --data "$data" --quiet --set train.epochs=1 -o "$tmp/k/m.bin" \
      >/dev/null 2>&1 &
  fi
  pid=$!
  # spread the kills over the run: from 0 to about 60 ms
  sleep "0.0$((RANDOM % 6))$((RANDOM % 10))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  check
  if "$mtrun" "$tmp/k/m.bin" info >/dev/null 2>&1; then valid=$((valid + 1)); else
    fail "(a) kill $i left an invalid model"
  fi
done
stray=$(find "$tmp/k" -mindepth 1 ! -name m.bin | wc -l)
check
[ "$stray" = 0 ] || fail "(a) $kills kills left $stray stray files: $(ls -A "$tmp/k")"
echo "e2e_saves: (a) $kills kill -9 trials: $valid valid models, $stray stray files"

# A named temporary file of a dead process (as a file system without
# O_TMPFILE, or a kill between link and rename, leaves) goes at the next save.
sh -c 'exit 0' &
dead=$!
wait "$dead" || true
touch "$tmp/k/.m.bin.mtr-tmp-$dead-abcdef" "$tmp/k/.other.mtr-tmp-$dead-abcdef"
"$mtrun" "$tmp/k/m.bin" set rating.weight=1
check
[ ! -e "$tmp/k/.m.bin.mtr-tmp-$dead-abcdef" ] || fail "(a) a dead process's temporary file stayed"
check
[ -e "$tmp/k/.other.mtr-tmp-$dead-abcdef" ] || fail "(a) another file's temporary file was removed"

# ---- (b) concurrent sets ----------------------------------------------------
cp "$tmp/trained.bin" "$tmp/c.bin"
both=0
for i in $(seq 1 "$pairs"); do
  "$mtrun" "$tmp/c.bin" set "rating.weight=$i" 2>"$tmp/c1.err" &
  p1=$!
  "$mtrun" "$tmp/c.bin" set "retrieval.weight=$((i + 100))" 2>"$tmp/c2.err" &
  p2=$!
  r1=0 r2=0
  wait "$p1" || r1=$?
  wait "$p2" || r2=$?
  check
  if [ "$r1" != 0 ] || [ "$r2" != 0 ]; then
    fail "(b) pair $i: exit $r1 and $r2: $(cat "$tmp/c1.err" "$tmp/c2.err")"
  elif same "$(knob "$tmp/c.bin" rating.weight)" "$i" &&
    same "$(knob "$tmp/c.bin" retrieval.weight)" "$((i + 100))"; then
    both=$((both + 1))
  else
    fail "(b) pair $i: a change was lost (rating.weight $(knob "$tmp/c.bin" rating.weight), retrieval.weight $(knob "$tmp/c.bin" retrieval.weight))"
  fi
done
echo "e2e_saves: (b) $pairs concurrent set pairs: both changes kept in $both"
# import and set at once: import alternates between two trained models'
# parameters, so that a lost import shows.
"$mtrun" "$tmp/trained.bin" export "$tmp/imp0" >/dev/null
"$mtrun" "$tmp/other.bin" export "$tmp/imp1" >/dev/null
table=$(cd "$tmp/imp0" && ls ./*embedding.npy | head -1)
both=0
for i in $(seq 1 "$pairs"); do
  from="$tmp/imp$((i % 2))"
  "$mtrun" "$tmp/c.bin" import "$from" 2>"$tmp/c1.err" &
  p1=$!
  "$mtrun" "$tmp/c.bin" set "rating.weight=$i" 2>"$tmp/c2.err" &
  p2=$!
  r1=0 r2=0
  wait "$p1" || r1=$?
  wait "$p2" || r2=$?
  rm -rf "$tmp/chk"
  "$mtrun" "$tmp/c.bin" export "$tmp/chk" >/dev/null
  check
  if [ "$r1" != 0 ] || [ "$r2" != 0 ]; then
    fail "(b) import pair $i: exit $r1 and $r2: $(cat "$tmp/c1.err" "$tmp/c2.err")"
  elif same "$(knob "$tmp/c.bin" rating.weight)" "$i" && cmp -s "$from/$table" "$tmp/chk/$table"; then
    both=$((both + 1))
  else
    fail "(b) import pair $i: a change was lost (rating.weight $(knob "$tmp/c.bin" rating.weight))"
  fi
done
echo "e2e_saves: (b) $pairs import and set pairs: both changes kept in $both"
stray=$(find "$tmp" -maxdepth 1 -name '.c.bin*' | wc -l)
check
[ "$stray" = 0 ] || fail "(b) stray files: $stray"

# ---- (c) targets that are not regular files --------------------------------
mkfifo "$tmp/fifo"
mkdir "$tmp/folder"
ln -s /dev/null "$tmp/devlink"
echo keep >"$tmp/real.txt"
ln -s real.txt "$tmp/filelink"
for target in fifo folder devlink; do
  t="$tmp/$target"
  for cmd in "mtrc" "train-o" "metrics" "steplog" "predict-o"; do
    rc=0
    case $cmd in
    mtrc) "$mtrc" "$tmp/p/planted.mtr" -o "$t" >/dev/null 2>"$tmp/err" || rc=$? ;;
    train-o) "$mtrun" "$tmp/small.bin" --data "$data" --quiet --set train.epochs=1 -o "$t" \
      >/dev/null 2>"$tmp/err" || rc=$? ;;
    metrics) "$mtrun" "$tmp/small.bin" --data "$data" --quiet --set train.epochs=1 \
      --metrics "$t" >/dev/null 2>"$tmp/err" || rc=$? ;;
    steplog) "$mtrun" "$tmp/small.bin" --data "$data" --quiet --set train.epochs=1 \
      --step-log "$t" >/dev/null 2>"$tmp/err" || rc=$? ;;
    predict-o)
      printf 'user_id,movie_title\nuser_01,item_g1_1\n' >"$tmp/rows.csv"
      "$mtrun" "$tmp/trained.bin" predict --file "$tmp/rows.csv" -o "$t" >/dev/null 2>"$tmp/err" || rc=$?
      ;;
    esac
    check
    [ "$rc" = 1 ] || fail "(c) $cmd to a $target: exit $rc, expected 1"
    check
    grep -q "not a regular file" "$tmp/err" || fail "(c) $cmd to a $target: $(cat "$tmp/err")"
  done
done
check
[ -p "$tmp/fifo" ] && [ -d "$tmp/folder" ] && [ -L "$tmp/devlink" ] ||
  fail "(c) a refused target was replaced"
check
[ "$(readlink "$tmp/devlink")" = /dev/null ] || fail "(c) the link to /dev/null changed"
"$mtrc" "$tmp/p/planted.mtr" -o "$tmp/filelink"
check
[ -L "$tmp/filelink" ] && "$mtrun" "$tmp/real.txt" info >/dev/null ||
  fail "(c) a link to a regular file was not followed"

# ---- (d) modes ---------------------------------------------------------------
(
  umask 027
  "$mtrun" "$tmp/small.bin" --data "$data" --quiet --set train.epochs=1 \
    --metrics "$tmp/m.jsonl" --step-log "$tmp/s.jsonl" -o "$tmp/new.bin" >/dev/null
  "$mtrun" "$tmp/trained.bin" predict --file "$tmp/rows.csv" -o "$tmp/pred.csv"
)
for f in m.jsonl s.jsonl new.bin pred.csv; do
  check
  mode=$(stat -c %a "$tmp/$f")
  [ "$mode" = 640 ] || fail "(d) $f has mode $mode under umask 027, expected 640"
done
cp "$tmp/small.bin" "$tmp/mode.bin"
chmod 604 "$tmp/mode.bin"
"$mtrun" "$tmp/mode.bin" set rating.weight=0.5
check
[ "$(stat -c %a "$tmp/mode.bin")" = 604 ] || fail "(d) set changed the mode of the model"

# ---- (e) a write error says why ---------------------------------------------
# A file size limit of 1 KiB (SIGXFSZ ignored, so write fails with EFBIG).
for cmd in mtrc steplog set; do
  rc=0
  (
    trap '' XFSZ
    ulimit -f 1
    case $cmd in
    mtrc) exec "$mtrc" "$tmp/big.mtr" -o "$tmp/e.bin" ;;
    steplog) exec "$mtrun" "$tmp/small.bin" --data "$data" --quiet --set train.epochs=2 \
      --step-log "$tmp/e.jsonl" ;;
    set) exec "$mtrun" "$tmp/k/m.bin" set rating.weight=0.75 ;;
    esac
  ) >/dev/null 2>"$tmp/err" || rc=$?
  check
  [ "$rc" = 1 ] || fail "(e) $cmd past the size limit: exit $rc, expected 1"
  check
  grep -q "File too large" "$tmp/err" || fail "(e) $cmd: the error gives no reason: $(cat "$tmp/err")"
done
check
[ ! -e "$tmp/e.bin" ] && [ ! -e "$tmp/e.jsonl" ] || fail "(e) a failed write left a file"
check
[ "$(knob "$tmp/k/m.bin" rating.weight)" = 1 ] || fail "(e) a failed set changed the model"

# ---- (g) export: all of its files or none -----------------------------------
mkdir -p "$tmp/x/items.txt" # a folder where export's last file goes
rc=0
"$mtrun" "$tmp/trained.bin" export "$tmp/x" >/dev/null 2>"$tmp/err" || rc=$?
check
[ "$rc" != 0 ] || fail "(g) export over a folder named items.txt succeeded"
check
[ -z "$(find "$tmp/x" -type f)" ] || fail "(g) a failed export left files: $(find "$tmp/x" -type f | head -3)"
rmdir "$tmp/x/items.txt"
"$mtrun" "$tmp/trained.bin" export "$tmp/x" >/dev/null
(cd "$tmp/x" && sha256sum ./* >"$tmp/x.sums")
rc=0
(
  trap '' XFSZ
  ulimit -f 64 # the embedding tables do not fit, the small files do
  exec "$mtrun" "$tmp/other.bin" export "$tmp/x"
) >/dev/null 2>"$tmp/err" || rc=$?
check
[ "$rc" = 1 ] || fail "(g) export past the size limit: exit $rc, expected 1"
check
(cd "$tmp/x" && sha256sum --quiet -c "$tmp/x.sums") || fail "(g) a failed export changed files"

# ---- (f) standard output ----------------------------------------------------
if [ -w /dev/full ]; then
  for cmd in info recommend predict train dump; do
    rc=0
    case $cmd in
    info) "$mtrun" "$tmp/trained.bin" info >/dev/full 2>"$tmp/err" || rc=$? ;;
    recommend) "$mtrun" "$tmp/trained.bin" recommend --user user_01 -k 5 >/dev/full 2>"$tmp/err" || rc=$? ;;
    predict) "$mtrun" "$tmp/trained.bin" predict --user user_01 --item item_g1_1 >/dev/full 2>"$tmp/err" || rc=$? ;;
    train) "$mtrun" "$tmp/small.bin" --data "$data" --quiet --set train.epochs=1 \
      -o "$tmp/full.bin" >/dev/full 2>"$tmp/err" || rc=$? ;;
    dump) "$mtrc" --dump graph "$tmp/p/planted.mtr" >/dev/full 2>"$tmp/err" || rc=$? ;;
    esac
    check
    [ "$rc" = 1 ] || fail "(f) $cmd > /dev/full: exit $rc, expected 1"
    check
    grep -q "No space left on device" "$tmp/err" || fail "(f) $cmd > /dev/full: $(cat "$tmp/err")"
  done
  check # a failed run writes nothing, as any failed command
  [ ! -e "$tmp/full.bin" ] || fail "(f) training whose table could not be written saved its model"
fi
# A reader that goes away is not an error worth a message.
for i in $(seq 1 300); do echo "user_$((i % 60 / 10))$((i % 10)),item_g1_1"; done |
  sed '1i user_id,movie_title' >"$tmp/many.csv"
rc=0
("$mtrun" "$tmp/trained.bin" recommend --file "$tmp/many.csv" -k 50 2>"$tmp/err" | head -n 1 >/dev/null) || rc=$?
check
[ ! -s "$tmp/err" ] || fail "(f) | head printed: $(cat "$tmp/err")"
rc=0
(trap '' PIPE; "$mtrun" "$tmp/trained.bin" recommend --file "$tmp/many.csv" -k 50 2>"$tmp/err" | head -n 1 >/dev/null) || rc=$?
check
[ ! -s "$tmp/err" ] || fail "(f) | head with SIGPIPE ignored printed: $(cat "$tmp/err")"

if [ "$failures" -gt 0 ]; then
  echo "e2e_saves: $failures of $checks checks failed" >&2
  exit 1
fi
echo "e2e_saves: all $checks checks passed"
