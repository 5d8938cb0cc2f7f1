#!/usr/bin/env bash
# Runs one fuzz target from a fresh seed corpus made from the project's own
# files (docs/testing.md):
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer options]...
#
# TARGET is mtr, model, data or npy; MTR_BIN_DIR names the fuzz build's bin/.
# The seeds go to $MTR_FUZZ_WORK/seeds (default BUILD/fuzz-work/TARGET), what
# the fuzzer finds to $MTR_FUZZ_WORK/corpus, and a crashing input to
# $MTR_FUZZ_WORK/crash-*. Exits non-zero when the fuzzer finds a failure.
set -euo pipefail
t="${1:?usage: fuzz/run.sh mtr|model|data|npy SECONDS [options]}"
secs="${2:?usage: fuzz/run.sh TARGET SECONDS [options]}"
shift 2
src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:?set MTR_BIN_DIR to the bin folder of the fuzz build}"
work="${MTR_FUZZ_WORK:-$bin/../fuzz-work/$t}"
seeds="$work/seeds"
rm -rf "$seeds" "$work/tmp"
mkdir -p "$seeds" "$work/corpus" "$work/tmp"
tmp="$work/tmp"

# A small trained model and its data, shared by the model, data and npy seeds.
trained() {
  bash "$src/tests/gen_planted.sh" "$tmp/planted" 3 >/dev/null
  "$bin/mtrc" "$tmp/planted/planted.mtr" -o "$tmp/planted.bin"
  "$bin/mtrun" "$tmp/planted.bin" --data "$tmp/planted/data" --quiet \
    --set train.epochs=1 -o "$tmp/trained.bin" >/dev/null
}

dict=()
case "$t" in
mtr)
  cp "$src"/models/*.mtr "$src"/tests/errors/*.mtr "$seeds/"
  if [ -x "$bin/gen_models" ]; then "$bin/gen_models" --count 100 --seed 1 --out "$seeds"; fi
  dict=(-dict="$src/fuzz/mtr.dict")
  ;;
model)
  trained
  i=0
  for m in "$src"/models/*.mtr; do
    "$bin/mtrc" "$m" -o "$tmp/m$i.bin"
    i=$((i + 1))
  done
  for f in "$tmp"/m*.bin "$tmp/trained.bin"; do
    b=$(basename "$f" .bin)
    { printf '\0'; cat "$f"; } >"$seeds/$b.raw"
    { printf '\1'; cat "$f"; } >"$seeds/$b.fixed"
  done
  ;;
data)
  trained
  d="$tmp/planted/data"
  # layout bytes: 0 MovieLens 100K, 1 1M, 2 latest, 3 csv+items, 4 tsv+items, 5 csv, 6 tsv
  { printf '\0'; printf '1\t10\t3\t881250949\n2\t20\t5\t881250950\n1\t20\t4\t8\n'
    printf '\f10|Toy Story (1995)|01-Jan-1995||http://x|0|1|0\n20|Heat (1995)|01-Jan-1995||http://y|1|0|0\n'; } >"$seeds/ml100k"
  { printf '\1'; printf '1::1193::5::978300760\n2::661::3::978302109\n'
    printf '\f1193::One Flew (1975)::Drama\n661::James (1996)::Animation|Musical\n'; } >"$seeds/ml1m"
  { printf '\2'; printf 'userId,movieId,rating,timestamp\n1,1,4.0,964982703\n2,3,4.5,964981247\n'
    printf '\fmovieId,title,genres\n1,Toy Story (1995),Adventure\n3,"Heat, The (1995)",Action\n'; } >"$seeds/latest"
  { printf '\3'; head -n 40 "$d/interactions.csv"; printf '\f'; head -n 20 "$d/items.csv"; } >"$seeds/csv"
  { printf '\4'; head -n 40 "$d/interactions.csv" | tr , '\t'; printf '\f'; head -n 20 "$d/items.csv"; } >"$seeds/tsv"
  { printf '\5'; head -n 40 "$d/interactions.csv"; } >"$seeds/csv_only"
  { printf '\6'; printf 'user_id\tmovie_title\tuser_rating\n"a b"\t"x\ty"\t3\n'; } >"$seeds/tsv_quoted"
  if [ -n "${MTR_DATA:-}" ] && [ -f "$MTR_DATA/u.data" ]; then
    { printf '\0'; head -n 60 "$MTR_DATA/u.data"; printf '\f'; head -n 60 "$MTR_DATA/u.item"; } >"$seeds/ml100k_real"
  fi
  ;;
npy)
  trained
  "$bin/mtrun" "$tmp/trained.bin" export "$tmp/export" >/dev/null
  cp "$tmp"/export/*.npy "$seeds/"
  ;;
*)
  echo "fuzz/run.sh: unknown target '$t' (mtr, model, data or npy)" >&2
  exit 2
  ;;
esac

exe="$bin/fuzz_$t"
[ -x "$exe" ] || { echo "fuzz/run.sh: $exe is missing: build with -DMTR_FUZZ=ON" >&2; exit 2; }
# The seeds come last: libFuzzer writes new inputs to the first folder only.
"$exe" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$work/" "${dict[@]}" "$@" "$work/corpus" "$seeds"
