#!/usr/bin/env bash
# The tutorial's joint model on synthetic logs of growing size (prints figures,
# never passes or fails).
#
#   bench/scale.sh [CASE...]
#
# CASE is one of (default: the first three)
#   1m       1M rows / 100k users / 20k items, Zipf 1.0 users and items
#   1m-uni   1M rows / 1M users / 500k items, uniform
#   10m      10M rows / 1M users / 100k items, Zipf 1.0
#   small    100k rows / 10k users / 5k items (a quick check of the script)
# For each case, bench/synth writes the data once (kept in $SCALE_DATA), then
# mtrun trains models/movielens.mtr (both loss weights 1, SCALE_EPOCHS epochs,
# default 1) SCALE_RUNS times (default 1) per thread count in SCALE_THREADS
# (default "1 2"), with --profile and --timings, and prints the medians of:
#   epoch s   the "seconds" of the train lines (median of a run's epochs)
#   eval s    "evaluation X s" of the results line (200k test rows: the 20% test
#             split of the 1M cases, 2% of the 10M case)
#   RSS MiB   peak resident memory (/usr/bin/time -v)
#   process   the whole process's wall and CPU (user + system) seconds: data,
#             training and evaluation; on a shared machine CPU / wall shows
#             how much of its threads' time the process really got
#   top ops   the three largest rows of the --profile table, with their shares
# Env: MTR_BIN (default build/bin), SCALE_DATA (default /tmp/mtr-scale),
# SCALE_ARGS (more mtrun arguments, e.g. "--eval-users 20000"), BENCH_KEEP=1.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${MTR_BIN:-$root/build/bin}"
runs="${SCALE_RUNS:-1}"
epochs="${SCALE_EPOCHS:-1}"
threads_list="${SCALE_THREADS:-1 2}"
data_root="${SCALE_DATA:-/tmp/mtr-scale}"
extra="${SCALE_ARGS:-}"

die() {
  echo "scale: $*" >&2
  exit 1
}

if [ ! -x "$bin/mtrc" ] || [ ! -x "$bin/mtrun" ] || [ ! -x "$bin/synth" ]; then
  die "no mtrc/mtrun/synth in $bin (build first, or set MTR_BIN)"
fi
command -v python3 >/dev/null || die "python3 is needed"
[ -x /usr/bin/time ] || die "/usr/bin/time (Debian package 'time') is needed for the peak RSS"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "SCALE_RUNS must be a positive number, not '$runs'"

cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(1m 1m-uni 10m)

# Extra mtrun arguments per case: the 10M case keeps 2% (200k rows) for test,
# as the other cases' 20% of 1M, so that evaluations compare.
case_args() {
  case "$1" in
    10m) echo "--set train.split=0.98" ;;
    *) echo "" ;;
  esac
}

synth_args() {
  case "$1" in
    1m) echo "--rows 1000000 --users 100000 --items 20000" ;;
    1m-uni) echo "--rows 1000000 --users 1000000 --items 500000 --user-zipf 0 --item-zipf 0" ;;
    10m) echo "--rows 10000000 --users 1000000 --items 100000" ;;
    small) echo "--rows 100000 --users 10000 --items 5000" ;;
    *) return 1 ;;
  esac
}

tmp="$(mktemp -d)"
if [ "${BENCH_KEEP:-0}" = 1 ]; then
  echo "scale: raw outputs kept in $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi
"$bin/mtrc" "$root/models/movielens.mtr" -o "$tmp/model.bin"

for c in "${cases[@]}"; do
  args="$(synth_args "$c")" || die "unknown case '$c' (1m, 1m-uni, 10m, small)"
  dir="$data_root/$c"
  if [ ! -f "$dir/done" ]; then
    mkdir -p "$dir"
    echo "scale: writing $dir"
    # shellcheck disable=SC2086
    "$bin/synth" $args --seed 42 --out "$dir"
    echo "$args" >"$dir/done"
  fi
  for t in $threads_list; do
    for run in $(seq 1 "$runs"); do
      p="$tmp/$c.t$t.r$run"
      # shellcheck disable=SC2086,SC2046 # the extra arguments are meant to split
      /usr/bin/time -v -o "$p.time" "$bin/mtrun" "$tmp/model.bin" --data "$dir" --threads "$t" \
        --quiet --profile --timings --metrics "$p.jsonl" --set rating.weight=1 \
        --set retrieval.weight=1 --set train.epochs="$epochs" $(case_args "$c") $extra \
        >"$p.out" 2>"$p.err" ||
        die "mtrun failed ($c, threads $t, run $run): $(tail -n 3 "$p.err")"
      echo "  $c threads $t run $run: $(grep -o '[0-9]* epochs in .*' "$p.out")"
    done
  done
done

python3 - "$tmp" "$runs" "${cases[*]}" "$threads_list" <<'PY'
import json, re, statistics, sys

tmp, runs, cases, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
sizes = {"1m": "1M / 100k / 20k", "1m-uni": "1M / 1M / 500k, uniform",
         "10m": "10M / 1M / 100k", "small": "100k / 10k / 5k"}


def one(p):
    ep = [json.loads(l)["seconds"] for l in open(p + ".jsonl") if '"phase":"train"' in l]
    m = re.search(r"evaluation ([0-9.]+) s", open(p + ".out").read())
    ops, total = {}, None
    for line in open(p + ".err"):
        f = line.split()
        if f[:2] == ["all", "ops"]:
            total = float(f[2])
        elif len(f) == 4 and f[1].isdigit() and f[3].endswith("%"):
            ops[f[0]] = float(f[2])
    tm = open(p + ".time").read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): *(\d+)", tm).group(1))
    cpu = sum(float(re.search(k + r" \(seconds\): *([0-9.]+)", tm).group(1))
              for k in ("User time", "System time"))
    w = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): *([0-9:.]+)", tm).group(1)
    wall = 0.0
    for part in w.split(":"):
        wall = 60 * wall + float(part)
    top = sorted(ops, key=ops.get, reverse=True)[:3]
    return {"epoch": statistics.median(ep), "eval": float(m.group(1)), "rss": rss / 1024.0,
            "wall": wall, "cpu": cpu,
            "top": ", ".join(f"{k} {100 * ops[k] / total:.0f}%" for k in top)}


print()
print(f"| rows / users / items | threads | epoch s | eval s | peak RSS MiB | process wall / CPU s | top ops in training |")
print("|---|---|---|---|---|---|---|")
for c in cases:
    for t in threads:
        rs = [one(f"{tmp}/{c}.t{t}.r{r}") for r in range(1, runs + 1)]
        med = {k: statistics.median(r[k] for r in rs) for k in ("epoch", "eval", "rss", "wall", "cpu")}
        print(f"| {sizes[c]} | {t} | {med['epoch']:.2f} | {med['eval']:.2f} | {med['rss']:.0f} "
              f"| {med['wall']:.1f} / {med['cpu']:.1f} | {rs[0]['top']} |")
print(f"(medians over {runs} run(s); 200k test rows; the models/movielens.mtr joint model)")
PY
