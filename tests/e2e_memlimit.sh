#!/usr/bin/env bash
# End-to-end: a memory limit (ulimit -v) is met with a clear error or a
# finished run, never a hang (runtime/memlimit.c). Under limits from 60 to
# 400 MB, training, eval, predict, recommend and info each end within 60 s:
# exit 0, or exit 1 with "out of memory" and, when it is OpenBLAS's buffers
# that do not fit, the limit and what to raise it to. A generous limit trains.
# A sweep runs fewer runs at once when the limit does not hold all it asks for.
# Skipped (77) in the sanitizer build: ASan needs an unlimited address space.
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
mtrc="$bin/mtrc"
mtrun="$bin/mtrun"
if ldd "$mtrun" 2>/dev/null | grep libasan >/dev/null; then # no -q: ldd must not get SIGPIPE under pipefail
  echo "e2e_memlimit: skipped in the sanitizer build"
  exit 77
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
failures=0
limit_s="${MTR_MEMLIMIT_TIMEOUT:-60}"
checks=0
fail() {
  echo "e2e_memlimit: FAIL: $*" >&2
  failures=$((failures + 1))
}

bash "$src/tests/gen_planted.sh" "$tmp/p" 3 >/dev/null
data="$tmp/p/data"
"$mtrc" "$tmp/p/planted.mtr" -o "$tmp/m.bin"
"$mtrun" "$tmp/m.bin" --data "$data" --quiet --set train.epochs=1 -o "$tmp/t.bin" >/dev/null

errors=0 done_ok=0
for mb in 60 100 150 200 400; do
  for cmd in train eval predict recommend info; do
    case $cmd in
    train) args=("$tmp/m.bin" --data "$data" --quiet --set train.epochs=1) ;;
    eval) args=("$tmp/t.bin" eval --data "$data" --quiet) ;;
    predict) args=("$tmp/t.bin" predict --user user_01 --item item_g1_1) ;;
    recommend) args=("$tmp/t.bin" recommend --user user_01 -k 3) ;;
    info) args=("$tmp/t.bin" info) ;;
    esac
    rc=0
    (ulimit -v $((mb * 1024)) && exec timeout -s KILL "$limit_s" "$mtrun" "${args[@]}") >/dev/null 2>"$tmp/err" || rc=$?
    checks=$((checks + 1))
    if [ "$rc" = 0 ]; then
      done_ok=$((done_ok + 1))
    elif [ "$rc" = 137 ] || [ "$rc" = 124 ]; then
      fail "$cmd under ${mb} MB: killed after $limit_s s (a hang)"
    elif [ "$rc" != 1 ]; then
      fail "$cmd under ${mb} MB: exit $rc: $(head -c 300 "$tmp/err")"
    elif ! grep -q "out of memory" "$tmp/err"; then
      fail "$cmd under ${mb} MB: no 'out of memory' in: $(head -c 300 "$tmp/err")"
    else
      errors=$((errors + 1))
    fi
  done
done
# The OpenBLAS case names the limit and what to raise it to.
rc=0
(ulimit -v $((100 * 1024)) && exec timeout -s KILL "$limit_s" "$mtrun" "$tmp/m.bin" --data "$data" --quiet) \
  >/dev/null 2>"$tmp/err" || rc=$?
checks=$((checks + 1))
grep -q "memory limit (ulimit -v) of .* raise the limit to at least" "$tmp/err" ||
  fail "training under 100 MB: the message does not explain: $(head -c 300 "$tmp/err")"
# A generous limit is no obstacle.
rc=0
(ulimit -v $((1024 * 1024)) && exec timeout -s KILL "$limit_s" "$mtrun" "$tmp/m.bin" --data "$data" --quiet \
  --set train.epochs=1) >/dev/null 2>"$tmp/err" || rc=$?
checks=$((checks + 1))
[ "$rc" = 0 ] || fail "training under 1 GB: exit $rc: $(head -c 300 "$tmp/err")"

# A sweep asked for four runs at once under a limit that holds fewer trains
# fewer at once, says so, and prints the table of one at a time.
sweep=("$tmp/m.bin" sweep --data "$data" --set train.epochs=1 --set rating.weight=0.5,1 --seeds 1,2)
"$mtrun" "${sweep[@]}" --threads 1 --quiet >"$tmp/sweep1.out"
rc=0
(ulimit -v $((400 * 1024)) && exec timeout -s KILL "$limit_s" "$mtrun" "${sweep[@]}" --threads 4) \
  >"$tmp/sweep4.out" 2>"$tmp/err" || rc=$?
checks=$((checks + 1))
[ "$rc" = 0 ] || fail "a sweep under 400 MB: exit $rc: $(head -c 300 "$tmp/err")"
grep -q "holds [123] runs\? at once of the 4 asked for" "$tmp/err" ||
  fail "a sweep under 400 MB: no note of fewer runs at once: $(grep -v '^epoch\|^run' "$tmp/err" | head -c 300)"
cmp -s "$tmp/sweep1.out" "$tmp/sweep4.out" || fail "a sweep under 400 MB printed another table"

echo "e2e_memlimit: $checks runs: $done_ok finished, $errors refused with a clear error"
if [ "$failures" -gt 0 ]; then
  echo "e2e_memlimit: $failures of $checks checks failed" >&2
  exit 1
fi
