#!/usr/bin/env bash
# End-to-end: --eval-users. On a small synthetic log (bench/synth), a trained
# model evaluated with --eval-users 300 reports 300 users, fewer rows than the
# whole test split, and a positive 95% half-width for every metric; with more
# users than the test split holds, every user is evaluated: the metrics equal
# those of the plain evaluation (top_k and coverage exactly, rmse and the
# per-user metrics recall and ndcg to 1e-9) and the half-widths are 0 (nothing
# is left to sample); coverage, a share of the catalogue, has no half-width.
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun, synth).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "e2e_eval_users: FAIL: $*" >&2
  exit 1
}

mkdir -p "$tmp/data"
"$bin/synth" --rows 20000 --users 2000 --items 800 --seed 3 --out "$tmp/data"
sed 's/metrics top_k(1, 5, 10, 50, 100)/metrics top_k(1, 5, 10, 50, 100), recall(10), ndcg(10), coverage(10)/' \
  "$src/models/movielens.mtr" >"$tmp/model.mtr"
grep -q "recall(10)" "$tmp/model.mtr" || fail "models/movielens.mtr changed: no metrics to extend"
"$bin/mtrc" "$tmp/model.mtr" -o "$tmp/model.bin"
"$bin/mtrun" "$tmp/model.bin" --data "$tmp/data" --threads 1 --quiet --set train.epochs=1 \
  -o "$tmp/trained.bin" >/dev/null
run_eval() {
  "$bin/mtrun" "$tmp/trained.bin" eval --data "$tmp/data" --threads 1 --quiet "$@"
}
run_eval --metrics "$tmp/all.jsonl" >/dev/null
run_eval --eval-users 300 --metrics "$tmp/some.jsonl" >"$tmp/some.out"
run_eval --eval-users 1000000 --metrics "$tmp/every.jsonl" >/dev/null
cat "$tmp/some.out"

python3 - "$tmp/all.jsonl" "$tmp/some.jsonl" "$tmp/every.jsonl" <<'PY' || fail "see above"
import json, sys

def test_line(path):
    for line in open(path):
        row = json.loads(line)
        if row.get("phase") == "test":
            return row
    sys.exit(f"no test line in {path}")

full, some, every = (test_line(p) for p in sys.argv[1:])
names = [k for k in full if k != "phase"]
bad = []
if some.get("eval_users") != 300:
    bad.append(f"eval_users is {some.get('eval_users')}, expected 300")
for k in names:
    h = some.get(k + "_ci95")
    for row, what in ((some, "300 users"), (every, "every user")):
        if not isinstance(row.get(k), (int, float)) or row[k] != row[k]:
            bad.append(f"{k}: {row.get(k)} with {what}")
    if "coverage" in k:
        if h is not None or every.get(k + "_ci95") is not None:
            bad.append(f"{k}: a half-width ({h})")
    elif h is None or not h > 0:
        bad.append(f"{k}: no positive half-width with 300 users ({h})")
    if "coverage" not in k and every.get(k + "_ci95") != 0:
        bad.append(f"{k}: half-width {every.get(k + '_ci95')} with every user, expected 0")
    tol = 1e-9 if k in ("rmse", "mae") or "recall" in k or "ndcg" in k else 0
    if abs(every[k] - full[k]) > tol:
        bad.append(f"{k}: {every[k]} with every user sampled, {full[k]} evaluating all rows")
for b in bad:
    print("e2e_eval_users: FAIL:", b)
sys.exit(1 if bad else 0)
PY
echo "  ok   --eval-users: sample size, half-widths, every user = the whole split"
