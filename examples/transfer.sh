#!/usr/bin/env bash
# Transfer between tasks: what a sparse task gains from rich ones (the
# multi-task tutorial's argument), with models/movielens_features.mtr.
#
#   examples/transfer.sh [DATA_DIR]
#
# The rating task trains on a seeded 5% of the training rows' ratings
# (`sample 0.05`, knob rating.sample) in two runs of one compiled model:
#   alone        --set liked.weight=0 --set retrieval.weight=0
#   with others  the liked and retrieval tasks train on every row too
# for each seed in $SEEDS, and prints the test RMSE of the rating task
# (measured on every test row) side by side, then their medians.
#
# Data: the first argument, else $MTR_DATA. Env: MTR_BIN (default build/bin),
# OUT (default out/transfer), THREADS (default 1), SEEDS (default "42 1 7"),
# EPOCHS (default 3), LR (Adagrad's rate, default 0.1, the tutorial's).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${MTR_BIN:-$root/build/bin}"
out="${OUT:-out/transfer}"
threads="${THREADS:-1}"
seeds="${SEEDS:-42 1 7}"
epochs="${EPOCHS:-3}"
lr="${LR:-0.1}"
die() {
  echo "transfer: $*" >&2
  exit 1
}
[ -x "$bin/mtrc" ] && [ -x "$bin/mtrun" ] || die "no mtrc/mtrun in $bin (build first, or set MTR_BIN)"
data="${1:-${MTR_DATA:-}}"
[ -n "$data" ] && [ -d "$data" ] || die "no data folder (give one, or set MTR_DATA)"
mkdir -p "$out"

# The features model with its rating task sampled (the one line changed).
sed 's/^task rating    = ranking(rating, user_rating) loss mse metrics rmse weight 1.0$/& sample 0.05/' \
  "$root/models/movielens_features.mtr" >"$out/transfer.mtr"
grep -q 'sample 0.05' "$out/transfer.mtr" || die "could not add 'sample 0.05' to the rating task"
"$bin/mtrc" "$out/transfer.mtr" -o "$out/transfer.bin"

rmse() { python3 -c 'import json,sys; print("%.4f" % [json.loads(l) for l in open(sys.argv[1])][-1]["rmse"])' "$1"; }
printf '%-6s %-12s %-12s\n' seed alone with_others
for seed in $seeds; do
  common=(--data "$data" --threads "$threads" --quiet --set train.seed="$seed"
    --set train.epochs="$epochs" --set optimizer.lr="$lr")
  "$bin/mtrun" "$out/transfer.bin" "${common[@]}" --set liked.weight=0 --set retrieval.weight=0 \
    --metrics "$out/alone_$seed.jsonl" >"$out/alone_$seed.log"
  "$bin/mtrun" "$out/transfer.bin" "${common[@]}" --metrics "$out/others_$seed.jsonl" \
    >"$out/others_$seed.log"
  printf '%-6s %-12s %-12s\n' "$seed" "$(rmse "$out/alone_$seed.jsonl")" "$(rmse "$out/others_$seed.jsonl")"
done | tee "$out/table.txt"
python3 - "$out/table.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip() and not l.startswith("seed")]
a = statistics.median(float(r[1]) for r in rows)
b = statistics.median(float(r[2]) for r in rows)
print("%-6s %-12.4f %-12.4f  (test RMSE of rating, trained on 5%% of its labels)" % ("median", a, b))
PY
