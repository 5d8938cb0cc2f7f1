#!/usr/bin/env bash
# End-to-end: the popularity baseline's top_k on MovieLens 100K's u1 split equals
# a plain count in Python. The baseline ranks every item by its title's count
# in the training rows (higher first, then the lower item row), each title
# once; a test row's rank is 1 + the titles listed before its item (the first
# item row with its title); rows whose title the training rows lack count as
# misses. mtr sorts that list once and ranks by bisection (runtime/rankeval.c);
# this recomputes it item by item. Skipped (77) without $MTR_DATA/u1.base.
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun), MTR_DATA.
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
data="${MTR_DATA:-}"
[ -n "$data" ] && [ -f "$data/u1.base" ] && [ -f "$data/u1.test" ] ||
  { echo "e2e_baseline: MTR_DATA does not name MovieLens 100K: skipped"; exit 77; }
command -v python3 >/dev/null || { echo "e2e_baseline: no python3: skipped"; exit 77; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$bin/mtrc" "$src/models/movielens.mtr" -o "$tmp/m.bin"
"$bin/mtrun" "$tmp/m.bin" --data "$data" --train "$data/u1.base" --test "$data/u1.test" \
  --quiet --set train.epochs=1 --set train.batch=16384 --threads 1 --metrics "$tmp/m.jsonl" \
  >/dev/null 2>"$tmp/err"
python3 - "$data" "$tmp/m.jsonl" <<'PY'
import collections, json, sys

data, metrics = sys.argv[1], sys.argv[2]
title, items = {}, []
for line in open(data + "/u.item", encoding="latin-1"):
    f = line.split("|")
    title[f[0]] = f[1]
    items.append(f[1])
train = [line.split("\t") for line in open(data + "/u1.base")]
test = [line.split("\t") for line in open(data + "/u1.test")]
count = collections.Counter(title[r[1]] for r in train)
score = [count.get(t, 0) for t in items]
listed, seen = [], set()
for i in sorted(range(len(items)), key=lambda i: (-score[i], i)):
    if items[i] in count and items[i] not in seen:
        seen.add(items[i])
        listed.append(i)
    elif items[i] not in count and None not in seen:  # unknown titles share one key
        seen.add(None)
        listed.append(i)
place = {i: p for p, i in enumerate(listed)}
first = {}
for i, t in enumerate(items):
    first.setdefault(t, i)
hits = collections.Counter()
for r in test:
    t = title[r[1]]
    if t not in count:
        continue
    rank = 1
    for j in listed[: place[first[t]]]:
        rank += items[j] != t
    for k in (1, 5, 10, 50, 100):
        hits[k] += rank <= k
got = [json.loads(l) for l in open(metrics) if '"baseline"' in l][-1]
bad = []
for k in (1, 5, 10, 50, 100):
    want = hits[k] / len(test)
    if abs(got[f"top_{k}"] - want) > 1e-9:
        bad.append(f"top_{k}: mtr {got[f'top_{k}']} python {want}")
if bad:
    print("e2e_baseline: FAIL:", "; ".join(bad), file=sys.stderr)
    sys.exit(1)
PY
