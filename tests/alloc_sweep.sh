#!/usr/bin/env bash
# The allocation-failure sweep (docs/testing.md), run by tests/e2e_allocfail.sh
# (every N for mtrc on models/retrieval_only.mtr, a sample of N for the other
# commands; every build) and tests/e2e_allocfail_heavy.sh (every N):
#
#   tests/alloc_sweep.sh full|short [COMMAND...]
#
# For each command -- mtrc -o on every model in models/, and on a small
# generated data set: training with -o and --metrics, eval, set, predict, predict
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
printf 'user_id,movie_title\nuser_01,item_g1_1\nuser_02,item_g2_3\nnobody,item_g0_0\n' >"$tmp/rows.csv"
echo "an old file that a failed run must leave as it is" >"$tmp/old"

# The work folder of one run: fresh, with the outputs that exist beforehand
# (the export folder only for the commands that use it).
setup() {
  rm -rf "$tmp/w"
  mkdir "$tmp/w"
  cp "$tmp/old" "$tmp/w/out.bin"
  cp "$tmp/old" "$tmp/w/out.csv"
  cp "$tmp/trained.bin" "$tmp/w/model.bin"
  if [ "$with_export" = 1 ]; then cp -r "$tmp/export" "$tmp/w/export"; fi
}

# run NAME N: runs command NAME in $tmp/w with allocation N failing (0: none).
run() {
  local name="$1" n="$2"
  cd "$tmp/w"
  local rc=0
  MTR_FAILALLOC="$n" MTR_FAILALLOC_COUNT="$tmp/count" "${cmd[@]}" >"$tmp/stdout" 2>"$tmp/stderr" || rc=$?
  cd "$tmp"
  return $rc
}

# The state of the work folder: every name in it, and every file's checksum.
state() { (cd "$tmp/w" && find . -mindepth 1 | sort && find . -type f -print0 | xargs -0 cksum | sort); }

sweep() {
  local name="$1"
  setup
  local before
  before=$(state)
  local rc=0
  run "$name" 0 || rc=$?
  if [ "$rc" != 0 ]; then
    fail "$name: the clean run exits $rc: $(head -c 600 "$tmp/stderr")"
    return
  fi
  local count
  count=$(cut -d' ' -f1 "$tmp/count")
  local ns
  # The short form sweeps all of the smallest model's compilation (the front
  # end and every compiler pass, in 180 runs) and samples the rest.
  if [ "$mode" = full ] || [ "$count" -le 40 ] || [ "$name" = mtrc:retrieval_only ]; then
    ns=$(seq 1 "$count")
  else # about 40 values: the first 10, and a stride with an offset over the rest
    ns=$( (seq 1 10; seq $((11 + RANDOM % 7)) $(((count - 10) / 30 + 1)) "$count") | sort -nu)
  fi
  local runs=0 ok=0
  for n in $ns; do
    setup
    rc=0
    run "$name" "$n" || rc=$?
    runs=$((runs + 1))
    local failed
    failed=$(cut -d' ' -f2 "$tmp/count" 2>/dev/null || echo "?")
    local why=""
    if grep -q "Sanitizer\|runtime error" "$tmp/stderr"; then
      why="a sanitizer report"
    elif [ "$failed" != 1 ]; then
      why="allocation $n was not reached (of $count in the clean run)"
    elif [ "$rc" = 0 ]; then
      why="exit 0 although allocation $n failed"
    elif [ "$rc" != 1 ]; then
      why="exit $rc (expected 1)"
    elif ! grep -qi "out of memory" "$tmp/stderr"; then
      why="no 'out of memory' message"
    elif [ "$(state)" != "$before" ]; then
      why="the files changed: $(diff <(echo "$before") <(state) | grep '^[<>]' | head -3 | tr '\n' ' ' || true)"
    fi
    if [ -n "$why" ]; then
      fail "$name, allocation $n: $why: $(head -c 400 "$tmp/stderr" | tr '\n' ' ')"
    else
      ok=$((ok + 1))
    fi
  done
  total_runs=$((total_runs + runs))
  echo "alloc_sweep: $name: $count allocations, $runs runs with one failing, $ok refused cleanly"
}

names=()
for m in "$src"/models/*.mtr; do names+=("mtrc:$(basename "$m" .mtr)"); done
names+=(train eval set predict predict-file recommend recommend-file export import)
[ $# -gt 0 ] && names=("$@")
for name in "${names[@]}"; do
  with_export=0
  case "$name" in
  mtrc:*) cmd=("$mtrc" "$src/models/${name#mtrc:}.mtr" -o out.bin) ;;
  train) cmd=("$mtrun" "$tmp/model.bin" --data "$data" --quiet --set train.epochs=1
    -o out.bin --metrics out.csv) ;;
  eval) cmd=("$mtrun" model.bin eval --data "$data" --quiet --metrics out.csv) ;;
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
