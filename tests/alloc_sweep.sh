#!/usr/bin/env bash
# The allocation-failure sweep (docs/testing.md), run by tests/e2e_allocfail.sh
# (every N for mtrc on models/retrieval_only.mtr, a sample of N for the other
# commands; every build) and tests/e2e_allocfail_heavy.sh (every N):
#
#   tests/alloc_sweep.sh full|short [COMMAND...]
#
# For each command -- mtrc -o on every model in models/, and on a small
# generated data set: training with -o and --metrics, eval, cv, sweep (one
# run at a time: the counts are those of one thread), set, predict, predict
# --file -o, recommend, recommend --file -o, export, import -o -- it counts
# the allocations of a clean run (tests/failalloc.c), then runs it again with
# allocation N failing, for every N (full) or about 40 spread over the range
# (short; the random offset of the stride changes from run to run). Each such run must exit 1 with a message that says "out of
# memory", leave every output file as it was (a new one absent, an existing
# one byte-identical), leave no temporary file, and produce no sanitizer
# report (a leak under ASan). A run that exits 0 with a failed allocation is
# a failure, whatever it printed. Prints one line of counts per command.
# Env: MTR_SOURCE_DIR, MTR_BIN_DIR (with mtrc_failalloc, mtrun_failalloc).
set -euo pipefail

mode="${1:?usage: alloc_sweep.sh full|short [COMMAND...]}"
shift
src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
mtrc="$bin/mtrc_failalloc"
mtrun="$bin/mtrun_failalloc"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
total_runs=0
export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=1:exitcode=99"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}${UBSAN_OPTIONS:+:}exitcode=99"

fail() {
  echo "alloc_sweep: FAIL: $*" >&2
  failures=$((failures + 1))
}

# The fixtures: a small data set, a trained model and its export.
bash "$src/tests/gen_planted.sh" "$tmp/p" 11 >/dev/null
data="$tmp/p/data"
"$bin/mtrc" "$tmp/p/planted.mtr" -o "$tmp/model.bin"
"$bin/mtrun" "$tmp/model.bin" --data "$data" --quiet --set train.epochs=1 -o "$tmp/trained.bin" >/dev/null
"$bin/mtrun" "$tmp/trained.bin" export "$tmp/export" >/dev/null
mkdir "$tmp/cv"
cp "$data"/*.csv "$tmp/cv/"
cp "$data/interactions.csv" "$tmp/cv/u1.base"
head -n 200 "$data/interactions.csv" >"$tmp/cv/u1.test"
printf 'user_id,movie_title\nuser_01,item_g1_1\nuser_02,item_g2_3\nnobody,item_g0_0\n' >"$tmp/rows.csv"
echo "an old file that a failed run must leave as it is" >"$tmp/old"

# The work folder $tmp/w$1 of worker $1: fresh, with the outputs that exist
# beforehand (the export folder only for the commands that use it).
setup() {
  local w="$tmp/w$1"
  rm -rf "$w"
  mkdir "$w"
  cp "$tmp/old" "$w/out.bin"
  cp "$tmp/old" "$w/out.csv"
  cp "$tmp/trained.bin" "$w/model.bin"
  if [ "$with_export" = 1 ]; then cp -r "$tmp/export" "$w/export"; fi
}

# The state of a work folder: every name in it, and every file's checksum (a
# failed export may have put some of its files in place again, byte for byte
# the same: each file is whole and unchanged).
state() { (cd "$tmp/w$1" && find . -mindepth 1 -printf '%p\n' | sort && find . -type f -exec cksum {} + | sort); }

# run WORKER N: runs the command in the worker's folder with allocation N
# failing (0: none); its exit status, stdout and stderr in $tmp/{rc,out,err}WORKER.
run() {
  local w="$1" n="$2" rc=0
  cd "$tmp/w$w"
  MTR_FAILALLOC="$n" MTR_FAILALLOC_COUNT="$tmp/count$w" "${cmd[@]}" >"$tmp/out$w" 2>"$tmp/err$w" || rc=$?
  cd "$tmp"
  return $rc
}

# part WORKER N...: runs the given N, writing "N WHY" for each failure to
# $tmp/fails$WORKER and the number of runs to $tmp/runs$WORKER. The folder is
# set up again only after a run that changed it (which is a failure).
part() {
  local w="$1" before rc count failed err why runs=0
  shift
  setup "$w"
  before=$(state "$w")
  : >"$tmp/fails$w"
  for n in "$@"; do
    rc=0
    run "$w" "$n" || rc=$?
    runs=$((runs + 1))
    failed="?"
    read -r count failed <"$tmp/count$w" || true
    err=""
    IFS= read -r -d '' err <"$tmp/err$w" || true
    why=""
    if [[ "$err" == *Sanitizer* || "$err" == *"runtime error"* ]]; then
      why="a sanitizer report"
    elif [ "$failed" != 1 ]; then
      why="allocation $n was not reached"
    elif [ "$rc" = 0 ]; then
      why="exit 0 although allocation $n failed"
    elif [ "$rc" != 1 ]; then
      why="exit $rc (expected 1)"
    elif [[ "${err,,}" != *"out of memory"* ]]; then
      why="no 'out of memory' message"
    else
      local now
      now=$(state "$w")
      if [ "$now" != "$before" ]; then
        why="the files changed: $(diff <(echo "$before") <(echo "$now") | grep '^[<>]' | head -4 | tr '\n' ' ' || true)"
        setup "$w"
        before=$(state "$w")
      fi
    fi
    if [ -n "$why" ]; then echo "$n $why: ${err:0:400}" | tr '\n' ' ' >>"$tmp/fails$w" && echo >>"$tmp/fails$w"; fi
  done
  echo "$runs" >"$tmp/runs$w"
}

sweep() {
  local name="$1" rc=0
  setup 0
  run 0 0 || rc=$?
  if [ "$rc" != 0 ]; then
    fail "$name: the clean run exits $rc: $(head -c 600 "$tmp/err0")"
    return
  fi
  local count failed
  read -r count failed <"$tmp/count0"
  local ns
  # The short form sweeps all of the smallest model's compilation (the front
  # end and every compiler pass, in 180 runs) and samples the rest.
  if [ "$mode" = full ] || [ "$count" -le 40 ] || [ "$name" = mtrc:retrieval_only ]; then
    ns=$(seq 1 "$count")
  else # about 40 values: the first 10, and a stride with an offset over the rest
    ns=$( (seq 1 10; seq $((11 + RANDOM % 7)) $(((count - 10) / 30 + 1)) "$count") | sort -nu)
  fi
  # Two workers, each with its own folder, take every other N.
  local odd=() even=() i=0
  for n in $ns; do
    if [ $((i % 2)) = 0 ]; then odd+=("$n"); else even+=("$n"); fi
    i=$((i + 1))
  done
  part 1 "${odd[@]}" &
  local p1=$!
  part 2 "${even[@]}" &
  local p2=$!
  wait "$p1" "$p2"
  local runs=$(($(<"$tmp/runs1") + $(<"$tmp/runs2")))
  local bad
  bad=$(cat "$tmp/fails1" "$tmp/fails2" | grep -c . || true)
  while IFS= read -r line; do
    [ -n "$line" ] && fail "$name, allocation ${line}"
  done < <(cat "$tmp/fails1" "$tmp/fails2" | sort -n)
  total_runs=$((total_runs + runs))
  echo "alloc_sweep: $name: $count allocations, $runs runs with one failing, $((runs - bad)) refused cleanly"
}

names=()
for m in "$src"/models/*.mtr; do names+=("mtrc:$(basename "$m" .mtr)"); done
names+=(train eval cv sweep set predict predict-file recommend recommend-file export import)
[ $# -gt 0 ] && names=("$@")
for name in "${names[@]}"; do
  with_export=0
  case "$name" in
  mtrc:*) cmd=("$mtrc" "$src/models/${name#mtrc:}.mtr" -o out.bin) ;;
  train) cmd=("$mtrun" "$tmp/model.bin" --data "$data" --quiet --set train.epochs=1
    -o out.bin --metrics out.csv) ;;
  eval) cmd=("$mtrun" model.bin eval --data "$data" --quiet --metrics out.csv) ;;
  cv) cmd=("$mtrun" "$tmp/model.bin" cv --data "$tmp/cv" --folds u1 --quiet --set train.epochs=1
    --metrics out.csv) ;;
  sweep) cmd=("$mtrun" "$tmp/model.bin" sweep --data "$data" --quiet --threads 1
    --set train.epochs=1 --set rating.weight=0.5,1 --metrics out.csv) ;;
  set) cmd=("$mtrun" model.bin set rating.weight=0.5 train.epochs=2) ;;
  predict) cmd=("$mtrun" model.bin predict --user user_01 --item item_g1_1) ;;
  predict-file) cmd=("$mtrun" model.bin predict --file "$tmp/rows.csv" -o out.csv) ;;
  recommend) cmd=("$mtrun" model.bin recommend --user user_01 -k 3) ;;
  recommend-file) cmd=("$mtrun" model.bin recommend --file "$tmp/rows.csv" -k 2 -o out.csv) ;;
  export) cmd=("$mtrun" model.bin export export) with_export=1 ;;
  import) cmd=("$mtrun" model.bin import export -o out.bin) with_export=1 ;;
  *)
    echo "alloc_sweep: unknown command '$name'" >&2
    exit 2
    ;;
  esac
  sweep "$name"
done

if [ "$failures" -gt 0 ]; then
  echo "alloc_sweep: $failures of $total_runs runs failed" >&2
  exit 1
fi
echo "alloc_sweep: all $total_runs runs refused cleanly"
