#!/usr/bin/env bash
# The multi-task results table (issue 10): the tutorial model, mf_bias, mmoe,
# ple, esmm and the tutorial with `weight auto` on both tasks, each trained on
# MovieLens 100K (seeded 80/20 split) with `validation 0.1` and `early_stop
# <first task's first metric> patience P`, over seeds 42, 1 and 7. Prints each
# task's test metrics (mean ± standard deviation over the seeds), the epoch
# early stopping kept for each seed, and the median training time per epoch
# (the "seconds" of every epoch run, validation passes not included).
#
#   MTR_DATA=data/ml-100k examples/results.sh [OUTDIR]
#
# Env: MTR_BIN_DIR (default build/bin), EPOCHS (default 20), PATIENCE
# (default 2), SEEDS (default "42 1 7"), THREADS (default: mtrun's), MODELS
# (a subset of the rows by name, e.g. "mf_bias esmm"), EXTRA (more mtrun
# arguments, e.g. "--set train.batch=1024").
# OUTDIR (default a temporary folder) keeps every run's metrics and output.
set -euo pipefail

src="$(cd "$(dirname "$0")/.." && pwd)"
bin="${MTR_BIN_DIR:-$src/build/bin}"
data="${MTR_DATA:?set MTR_DATA to the MovieLens 100K folder}"
epochs="${EPOCHS:-20}"
patience="${PATIENCE:-2}"
seeds="${SEEDS:-42 1 7}"
out="${1:-}"
if [ -z "$out" ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

# variant NAME SOURCE [auto]: the model with validation and early_stop (and,
# with auto, `weight auto` on every task) as OUT/NAME.mtr
variant() {
  python3 - "$2" "$out/$1.mtr" "$patience" "${3:-}" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
if sys.argv[4] == 'auto':
    text = re.sub(r'^(task\s.*?)\bweight\s+[0-9.]+', r'\1weight auto', text, flags=re.M)
task = re.search(r'^task\s+(\w+)\s*=.*?metrics\s+(\w+)(\(([^)]*)\))?', text, re.M)
name, metric = task.group(1), task.group(2)
if metric == 'top_k':
    metric = 'top_' + (task.group(4).split(',')[-1].strip() if task.group(4) else '100')
lines = '  validation 0.1\n  early_stop %s.%s patience %s\n' % (name, metric, sys.argv[3])
text = re.sub(r'(^train\s*\{[^}]*)\}', lambda m: m.group(1) + lines + '}', text, flags=re.M)
open(sys.argv[2], 'w').write(text)
PY
}

runs=(movielens:movielens mf_bias:mf_bias mmoe:mmoe ple:ple esmm:esmm movielens_auto:movielens:auto)
if [ -n "${MODELS:-}" ]; then # a subset, by name: MODELS="mf_bias esmm"
  keep=()
  for r in "${runs[@]}"; do
    case " $MODELS " in *" ${r%%:*} "*) keep+=("$r") ;; esac
  done
  runs=("${keep[@]}")
fi
for r in "${runs[@]}"; do
  IFS=: read -r name model auto <<<"$r"
  variant "$name" "$src/models/$model.mtr" "$auto"
  "$bin/mtrc" "$out/$name.mtr" -o "$out/$name.bin"
  for s in $seeds; do
    echo "results: $name, seed $s" >&2
    "$bin/mtrun" "$out/$name.bin" --data "$data" --quiet --timings "${threads[@]}" \
      --set train.seed="$s" --set train.epochs="$epochs" ${EXTRA:-} \
      --metrics "$out/$name.$s.jsonl" >"$out/$name.$s.out"
  done
done

python3 - "$out" "$seeds" "${runs[@]}" <<'PY'
import json, statistics, sys
out, seeds, runs = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
def show(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return '-'
    if len(vals) == 1:
        return '%.4f' % vals[0]
    return '%.4f ± %.4f' % (statistics.mean(vals), statistics.stdev(vals))
cols = ['rating RMSE', 'liked AUC', 'loved AUC', 'top-100', 'kept epoch', 's/epoch']
rows, best = [], None
for r in runs:
    name = r.split(':')[0]
    got = {c: [] for c in cols}
    for s in seeds:
        lines = [json.loads(l) for l in open('%s/%s.%s.jsonl' % (out, name, s))]
        test = [l for l in lines if l['phase'] == 'test'][0]
        secs = [l['seconds'] for l in lines if l['phase'] == 'train']
        def pick(*keys):
            for k in keys:
                if k in test:
                    return test[k]
            return None
        got['rating RMSE'].append(pick('rmse', 'rating.rmse'))
        got['liked AUC'].append(pick('liked.auc', 'auc') if 'liked' in open('%s/%s.mtr' % (out, name)).read() else None)
        got['loved AUC'].append(pick('loved.auc'))
        got['top-100'].append(pick('top_100', 'retrieval.top_100'))
        got['kept epoch'].append(str(test.get('best_epoch', '-')))
        got['s/epoch'].extend(secs)
    rmse = [v for v in got['rating RMSE'] if v is not None]
    if rmse and (best is None or statistics.mean(rmse) < best[1]):
        best = (name, statistics.mean(rmse))
    rows.append([name] + [show(got[c]) for c in cols[:4]] + ['/'.join(got['kept epoch']),
                 '%.2f' % statistics.median(got['s/epoch'])])
head = ['model'] + cols
width = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
print('seeds %s; test metrics mean ± sd; kept epoch per seed; median s/epoch' % ' '.join(seeds))
print('  '.join(h.ljust(w) for h, w in zip(head, width)))
print('  '.join('-' * w for w in width))
for row in rows:
    print('  '.join(str(x).ljust(w) for x, w in zip(row, width)))
if best:
    print('best rating RMSE: %s %.4f (Surprise on ml-100k: SVD 0.934, SVD++ 0.92)' % best)
PY
