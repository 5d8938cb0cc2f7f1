#!/usr/bin/env bash
# Benchmark of the tutorial's joint model on MovieLens 100K (prints figures,
# never passes or fails).
#
#   bench/bench.sh [DATA_DIR]
#
# Compiles models/movielens.mtr, then trains the joint model (both loss
# weights 1) for 3 epochs with --threads 1 and with --threads 2, BENCH_RUNS
# times each (default 5), with --profile and --metrics, and prints for each
# thread count the median over the runs of:
#   epoch s       seconds per training epoch (the "seconds" of the train lines)
#   eval s        seconds per evaluation pass (the "evaluation X s" of stdout)
#   examples/s    training rows / epoch seconds
#   peak RSS      the process's peak resident memory (/usr/bin/time -v, else
#                 VmHWM polled from /proc/PID/status)
#   matmul share  the matmul row of the --profile table / its "all ops" row,
#                 and the largest other op with its share (a fused op, e.g.
#                 inbatch_softmax_xent_qc, makes its own products inside)
# beside the targets: epoch <= 2.5 s, evaluation <= 0.3 s, peak RSS <= 1 GiB.
#
# Data: the first argument, else $MTR_DATA, else scripts/get-data's folder.
# Env: MTR_BIN (mtrc and mtrun, default build/bin), BENCH_RUNS (default 5),
# BENCH_THREADS (default "1 2"), BENCH_KEEP=1 keeps the raw outputs (the
# folder is printed). Needs python3.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${MTR_BIN:-$root/build/bin}"
runs="${BENCH_RUNS:-5}"
threads_list="${BENCH_THREADS:-1 2}"

die() {
  echo "bench: $*" >&2
  exit 1
}

[ -x "$bin/mtrc" ] && [ -x "$bin/mtrun" ] || die "no mtrc/mtrun in $bin (build first, or set MTR_BIN)"
command -v python3 >/dev/null || die "python3 is needed (scripts/install-deps installs it)"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive number, not '$runs'"
if [ $# -ge 1 ]; then
  data="$1"
elif [ -n "${MTR_DATA:-}" ]; then
  data="$MTR_DATA"
else
  data="$("$root/scripts/get-data" "$root/data" | tail -n 1)"
fi
[ -f "$data/u.data" ] || die "'$data' holds no MovieLens 100K (u.data)"

tmp="$(mktemp -d)"
if [ "${BENCH_KEEP:-0}" = 1 ]; then
  echo "bench: raw outputs kept in $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi

# GNU time reports the peak RSS exactly; without it, poll /proc.
gnu_time=""
if [ -x /usr/bin/time ] && /usr/bin/time -v true 2>/dev/null; then
  gnu_time=/usr/bin/time
fi

# measure PREFIX CMD...: runs CMD with stdout in PREFIX.out, stderr in
# PREFIX.err, and its peak RSS in kB in PREFIX.rss.
measure() {
  local prefix="$1"
  shift
  if [ -n "$gnu_time" ]; then
    "$gnu_time" -v -o "$prefix.time" "$@" >"$prefix.out" 2>"$prefix.err"
    sed -n 's/.*Maximum resident set size (kbytes): *//p' "$prefix.time" >"$prefix.rss"
  else
    "$@" >"$prefix.out" 2>"$prefix.err" &
    local pid=$! peak=0 kb
    while kill -0 "$pid" 2>/dev/null; do
      kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
      [ -n "$kb" ] && [ "$kb" -gt "$peak" ] && peak=$kb
      sleep 0.05
    done
    wait "$pid"
    echo "$peak" >"$prefix.rss"
  fi
}

"$bin/mtrc" "$root/models/movielens.mtr" -o "$tmp/model.bin"
echo "bench: joint model, 3 epochs, $data, $runs runs per thread count" \
  "(peak RSS from ${gnu_time:-/proc VmHWM polling})"
for threads in $threads_list; do
  for run in $(seq 1 "$runs"); do
    prefix="$tmp/t$threads.r$run"
    measure "$prefix" "$bin/mtrun" "$tmp/model.bin" --data "$data" --threads "$threads" \
      --quiet --profile --set rating.weight=1 --set retrieval.weight=1 \
      --set train.epochs=3 --metrics "$prefix.jsonl" --timings ||
      die "mtrun failed (threads $threads, run $run): $(tail -n 3 "$prefix.err")"
    echo "  threads $threads run $run: $(grep -o '[0-9]* epochs in .*' "$prefix.out")"
  done
done

python3 - "$tmp" "$runs" $threads_list <<'PY'
import glob
import json
import re
import statistics
import sys

tmp, runs, threads_list = sys.argv[1], int(sys.argv[2]), sys.argv[3:]


def one_run(prefix):
    epochs = []
    with open(prefix + ".jsonl") as f:
        for line in f:
            row = json.loads(line)
            if row.get("phase") == "train":
                epochs.append(row["seconds"])
    out = open(prefix + ".out").read()
    m = re.search(r"(\d+) training rows.*evaluation ([0-9.]+) s", out)
    if not m:
        sys.exit(f"bench: no results line in {prefix}.out")
    rows, eval_s = int(m.group(1)), float(m.group(2))
    ops, total = {}, None
    for line in open(prefix + ".err"):
        f = line.split()
        if f[:2] == ["all", "ops"]:
            total = float(f[2])
        elif len(f) == 4 and f[1].isdigit() and f[3].endswith("%"):
            ops[f[0]] = float(f[2])
    if "matmul" not in ops or not total:
        sys.exit(f"bench: no --profile table in {prefix}.err")
    rss_kb = int(open(prefix + ".rss").read().strip() or 0)
    epoch = statistics.median(epochs)
    top = max((k for k in ops if k != "matmul"), key=ops.get)
    return {"epoch": epoch, "eval": eval_s, "rate": rows / epoch,
            "rss": rss_kb / 1024.0, "share": ops["matmul"] / total,
            "top": top, "top_share": ops[top] / total}


print()
print(f"{'threads':>7} {'epoch s':>9} {'eval s':>8} {'examples/s':>11} {'peak RSS MiB':>13}"
      f" {'matmul share':>13}   largest other op")
for t in threads_list:
    rs = [one_run(f"{tmp}/t{t}.r{r}") for r in range(1, runs + 1)]
    med = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "top"}
    top = rs[0]["top"]
    print(f"{t:>7} {med['epoch']:>9.3f} {med['eval']:>8.3f} {med['rate']:>11.0f} "
          f"{med['rss']:>13.1f} {100 * med['share']:>12.1f}%   {top} {100 * med['top_share']:.1f}%")
print(f"{'target':>7} {'<= 2.5':>9} {'<= 0.3':>8} {'':>11} {'<= 1024':>13}")
print(f"(medians over {runs} runs; epoch s is the median of each run's epochs; the shares are of")
print(" the --profile table's 'all ops'; a fused op such as inbatch_softmax_xent_qc does its own")
print(" matrix products inside, which the matmul share does not count)")
PY
