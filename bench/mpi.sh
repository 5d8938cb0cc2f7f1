#!/usr/bin/env bash
# Data-parallel training time: the tutorial's joint model (models/movielens.mtr)
# trained on DATA_DIR by one process (--threads 1, --threads 2) and by
# mpirun -np N (--threads 1 per rank), BENCH_RUNS times each. Prints per setup
# the median epoch seconds (the "seconds" of --metrics --timings train lines,
# over every epoch of every run), the median evaluation seconds, the first
# run's test metrics, and the bytes each rank sent per step (rank 0's line).
# Wall-clock: run it on an otherwise idle machine, or say that it was not.
#   bench/mpi.sh [DATA_DIR]      (default $MTR_DATA)
# Env: MTR_BIN (default build/bin), BENCH_RUNS (default 3), BENCH_EPOCHS
# (default 3), BENCH_SETUPS (default "1:1 1:2 2:1", RANKS:THREADS each),
# BENCH_SETS (more KEY=VALUE for --set, e.g. train.split=0.98), BENCH_MPIRUN
# (mpirun's options; default --allow-run-as-root --oversubscribe --bind-to none:
# on a shared machine a rank pinned to a busy core waits for it).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${MTR_BIN:-$here/build/bin}"
data="${1:-${MTR_DATA:-}}"
if [ -z "$data" ]; then
  echo "usage: bench/mpi.sh DATA_DIR (or set MTR_DATA)" >&2
  exit 2
fi
runs="${BENCH_RUNS:-3}" epochs="${BENCH_EPOCHS:-3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin/mtrc" "$here/models/movielens.mtr" -o "$tmp/model.bin"
sets=(--set "train.epochs=$epochs")
for s in ${BENCH_SETS:-}; do sets+=(--set "$s"); done

# setup NAME RANKS THREADS
setup() {
  local name="$1" n="$2" threads="$3" pre=()
  # shellcheck disable=SC2206 # the options are meant to split
  [ "$n" = 1 ] || pre=(mpirun ${BENCH_MPIRUN:---allow-run-as-root --oversubscribe --bind-to none} -np "$n")
  for r in $(seq "$runs"); do
    "${pre[@]}" "$bin/mtrun" "$tmp/model.bin" --data "$data" --threads "$threads" \
      --metrics "$tmp/$name.$r.jsonl" --timings "${sets[@]}" >"$tmp/$name.$r.out" \
      2>"$tmp/$name.$r.err"
  done
  python3 - "$tmp" "$name" "$runs" "$epochs" <<'PY'
import json, re, statistics, sys
tmp, name, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
epochs_per_run = int(sys.argv[4])
epoch, ev, test, sent = [], [], None, "-"
for r in range(1, runs + 1):
    for line in open(f"{tmp}/{name}.{r}.jsonl"):
        row = json.loads(line)
        if row["phase"] == "train":
            epoch.append(row["seconds"])
        elif row["phase"] == "test" and test is None:
            test = row
    m = re.search(r"evaluation ([0-9.]+) s", open(f"{tmp}/{name}.{r}.out").read())
    ev.append(float(m.group(1)))
    m = re.search(r"([0-9]+) bytes sent per step.*, ([0-9.]+) s of training in collectives",
                  open(f"{tmp}/{name}.{r}.err").read())
    if m:
        sent = f"{m.group(1)} ({float(m.group(2)) / epochs_per_run:.2f} s/epoch waiting)"
keys = [k for k in test if k != "phase"]
print(f"{name:<18} epoch {statistics.median(epoch):7.3f} s  eval {statistics.median(ev):6.3f} s"
      f"  bytes/step/rank {sent}  " + " ".join(f"{k} {test[k]:.4f}" for k in keys))
PY
}
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $runs runs of $epochs epochs"
for rt in ${BENCH_SETUPS:-1:1 1:2 2:1}; do
  setup "${rt%%:*} rank x ${rt##*:} thr" "${rt%%:*}" "${rt##*:}"
done
