#!/usr/bin/env bash
# End-to-end: the popularity baseline's top_k on MovieLens 100K (u1.base /
# u1.test), with and without --exclude-seen, against a plain computation in
# python: each title scored by its training count, ties to the first item row,
# each title once, a test row's rank 1 + the titles (other than its own, and
# without the user's own training titles when excluded) ranking before it.
# Skipped (77) without $MTR_DATA/u1.base or python3.
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun), MTR_DATA.
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
data="${MTR_DATA:-}"
[ -n "$data" ] && [ -f "$data/u1.base" ] && [ -f "$data/u1.test" ] ||
  { echo "e2e_baseline_heavy: MTR_DATA does not name MovieLens 100K: skipped"; exit 77; }
command -v python3 >/dev/null || { echo "e2e_baseline_heavy: no python3: skipped"; exit 77; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "e2e_baseline_heavy: FAIL: $*" >&2
  exit 1
}

"$bin/mtrc" "$src/models/movielens.mtr" -o "$tmp/m.bin"
split=(--data "$data" --train "$data/u1.base" --test "$data/u1.test")
for ex in 0 1; do
  flag=()
  [ "$ex" = 1 ] && flag=(--exclude-seen)
  "$bin/mtrun" "$tmp/m.bin" "${split[@]}" --quiet --set train.epochs=1 --set train.batch=4096 \
    "${flag[@]}" --metrics "$tmp/m$ex.jsonl" >/dev/null
  python3 - "$data" "$tmp/m$ex.jsonl" "$ex" <<'PY' || fail "the popularity baseline (exclude_seen=$ex) differs from the plain computation"
import json, sys, collections
data, metrics, exclude = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
title = []
for line in open(data + "/u.item", encoding="latin-1"):
    title.append(line.split("|")[1])
def rows(name):
    return [(f[0], title[int(f[1]) - 1]) for f in (l.split("\t") for l in open(data + "/" + name))]
train, test = rows("u1.base"), rows("u1.test")
pop = collections.Counter(t for _, t in train)
first = {}
for i, t in enumerate(title):
    k = t if t in pop else None  # a title without training rows is out of the vocabulary
    first.setdefault(k, i)
keys = sorted(first, key=lambda k: (-pop.get(k, 0), first[k]))
seen = collections.defaultdict(set)
for u, t in train:
    seen[u].add(t)
ks = (1, 5, 10, 50, 100)
hits = [0] * len(ks)
for u, t in test:
    if t not in pop:
        continue  # unrankable: counted as a miss
    before = (-pop[t], first[t])
    rank = 1 + sum(1 for k in keys if k != t and not (exclude and k in seen[u])
                   and (-pop.get(k, 0), first[k]) < before)
    for i, k in enumerate(ks):
        hits[i] += rank <= k
base = [json.loads(l) for l in open(metrics) if '"phase":"baseline"' in l][0]
bad = [(f"top_{k}", base[f"top_{k}"], h / len(test)) for k, h in zip(ks, hits) if base[f"top_{k}"] != h / len(test)]
if bad:
    print(bad)
    sys.exit(1)
PY
done
echo "e2e_baseline_heavy: the popularity baseline matches the plain computation, with and without --exclude-seen"
