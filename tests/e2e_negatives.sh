#!/usr/bin/env bash
# End-to-end: mixed negatives (`negatives N popularity A` on a retrieval task).
# On a small synthetic log (bench/synth): a model with 16 negatives drawn by
# popularity, with logq and hit removal, trains; a rerun is byte-identical
# (metrics and saved model); --set retrieval.negatives=0 (the knob) changes the
# training; the compiler refuses popularity without negatives, negatives on a
# ranking task, and a candidate tower that reads more than its key column;
# under mpirun (when the build has it) 2 ranks print one process's test metrics.
# Env: MTR_SOURCE_DIR, MTR_BIN_DIR (mtrc, mtrun, synth), MTR_WITH_MPI, MTR_SANITIZED.
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "e2e_negatives: FAIL: $*" >&2
  exit 1
}

mkdir -p "$tmp/data"
"$bin/synth" --rows 3000 --users 60 --items 80 --seed 3 --out "$tmp/data" >/dev/null
model() {
  cat <<MTR
model neg
input user_id     : string
input movie_title : string
tower user  = user_id     -> lookup -> embedding(8)
tower movie = movie_title -> lookup -> embedding(8) -> dense(8)
task retrieval = retrieval(user, movie) metrics top_k(10), recall(10) $1
train {
  batch 256
  epochs 2
}
MTR
}
model "negatives 16 popularity 0.75 logq remove_accidental_hits" >"$tmp/neg.mtr"
"$bin/mtrc" "$tmp/neg.mtr" -o "$tmp/neg.bin"
run() { "$bin/mtrun" "$tmp/neg.bin" --data "$tmp/data" --quiet --threads 1 "$@"; }
run --metrics "$tmp/a.json" -o "$tmp/a.bin" >/dev/null
run --metrics "$tmp/b.json" -o "$tmp/b.bin" >/dev/null
cmp -s "$tmp/a.json" "$tmp/b.json" || fail "a rerun's metrics differ"
cmp -s "$tmp/a.bin" "$tmp/b.bin" || fail "a rerun's model differs"
run --metrics "$tmp/z.json" --set retrieval.negatives=0 -o "$tmp/z.bin" >/dev/null
cmp -s "$tmp/a.bin" "$tmp/z.bin" && fail "negatives=0 trained the same model as 16"
grep -q '"recall_10"' "$tmp/a.json" || fail "no recall_10 in the metrics"

refuse() { # $1 = task clauses, $2 = expected message part, $3 = task line override
  model "$1" >"$tmp/bad.mtr"
  [ -n "${3:-}" ] && sed -i "s|^tower movie = .*|$3|" "$tmp/bad.mtr"
  if "$bin/mtrc" "$tmp/bad.mtr" -o "$tmp/bad.bin" 2>"$tmp/err"; then fail "accepted: $1"; fi
  grep -q "$2" "$tmp/err" || fail "'$1': $(cat "$tmp/err")"
}
refuse "popularity 0.5" "write \`negatives N popularity A\`"
refuse "negatives 0" "negatives takes a whole number"
refuse "negatives 8" "reads only its key column" \
  "tower movie = concat(user, movie_title -> lookup -> embedding(8)) -> dense(8)"

case "${MTR_WITH_MPI:-}:${MTR_SANITIZED:-OFF}" in
ON:OFF | on:OFF | 1:OFF | TRUE:OFF | true:OFF)
  mpi=(mpirun --allow-run-as-root --oversubscribe)
  if command -v mpirun >/dev/null && "${mpi[@]}" -np 2 true >/dev/null 2>&1; then
    "$bin/mtrun" "$tmp/neg.bin" --data "$tmp/data" --threads 1 --quiet \
      --metrics "$tmp/np1.jsonl" >/dev/null || fail "one process"
    "${mpi[@]}" -np 2 "$bin/mtrun" "$tmp/neg.bin" --data "$tmp/data" --threads 1 --quiet \
      --metrics "$tmp/np2.jsonl" >/dev/null 2>"$tmp/mpierr" || fail "mpirun: $(cat "$tmp/mpierr")"
    python3 - "$tmp/np1.jsonl" "$tmp/np2.jsonl" <<'PY' || fail "2 ranks' test metrics differ from one process's"
import json, sys
test = lambda p: next(json.loads(l) for l in open(p) if '"phase":"test"' in l)
a, b = test(sys.argv[1]), test(sys.argv[2])
bad = [k for k in a if k != "phase" and round(a[k], 4) != round(b[k], 4)]
print("\n".join(f"{k}: {a[k]} against {b[k]}" for k in bad))
sys.exit(1 if bad or a.keys() != b.keys() else 0)
PY
  fi
  ;;
esac
echo "e2e_negatives: ok"
