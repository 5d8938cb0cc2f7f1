#!/usr/bin/env bash
# End-to-end: honest evaluation on MovieLens 100K (issue 11). Trained on the
# u1.base/u1.test split, `recommend --exclude-seen` lists no film the user
# rated in u1.base and no title twice; recommending for every user lists no
# title twice; an items file of 50 films warns with the count of unrankable
# test rows; --metrics holds a "baseline" line beside the "test" one, and the
# per-user metrics are there. Skipped (77) without $MTR_DATA/u.data.
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (mtrc, mtrun), MTR_DATA.
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
data="${MTR_DATA:-}"
[ -n "$data" ] && [ -f "$data/u.data" ] && [ -f "$data/u1.base" ] ||
  { echo "e2e_honest: MTR_DATA does not name MovieLens 100K: skipped"; exit 77; }
command -v python3 >/dev/null || { echo "e2e_honest: no python3: skipped"; exit 77; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "e2e_honest: FAIL: $*" >&2
  exit 1
}

sed 's/metrics top_k(1, 5, 10, 50, 100)/metrics top_k(10, 100), recall(100), ndcg(10), coverage(100)/' \
  "$src/models/movielens.mtr" >"$tmp/m.mtr"
"$bin/mtrc" "$tmp/m.mtr" -o "$tmp/m.bin"
split=(--data "$data" --train "$data/u1.base" --test "$data/u1.test")
"$bin/mtrun" "$tmp/m.bin" "${split[@]}" --quiet --set train.epochs=1 --metrics "$tmp/m.jsonl" \
  -o "$tmp/t.bin" >"$tmp/train.out"
grep -q '"phase":"baseline"' "$tmp/m.jsonl" || fail "no baseline line in --metrics"
for k in recall_100 ndcg_10 coverage_100; do
  grep '"phase":"test"' "$tmp/m.jsonl" | grep -q "\"$k\":" || fail "no $k in the test line"
done
head -n 2 "$tmp/train.out" | grep -q baseline || fail "no baseline column in the table"

"$bin/mtrun" "$tmp/t.bin" recommend --user 42 -k 10 --exclude-seen "${split[@]}" >"$tmp/rec42"
[ "$(wc -l <"$tmp/rec42")" -eq 10 ] || fail "recommend -k 10 listed $(wc -l <"$tmp/rec42") items"
python3 - "$data" "$tmp/rec42" <<'PY' || fail "recommend --exclude-seen lists a film user 42 rated, or a title twice"
import sys
data, rec = sys.argv[1], sys.argv[2]
title = {}
for line in open(data + "/u.item", encoding="latin-1"):
    f = line.split("|")
    title[f[0]] = f[1]
seen = {title[f[1]] for f in (l.split("\t") for l in open(data + "/u1.base")) if f[0] == "42"}
listed = [l.rstrip("\n").split("\t")[2] for l in open(rec, encoding="latin-1")]
bad = [t for t in listed if t in seen]
if bad or len(set(listed)) != len(listed):
    print("seen:", bad, "listed:", listed)
    sys.exit(1)
PY

# every user's top 100: no title twice
printf 'user_id\n' >"$tmp/users.csv"
cut -f1 "$data/u.data" | sort -un >>"$tmp/users.csv"
"$bin/mtrun" "$tmp/t.bin" recommend --file "$tmp/users.csv" -k 100 -o "$tmp/all.csv"
python3 - "$tmp/all.csv" <<'PY' || fail "a user's list holds a title twice"
import csv, sys, collections
lists = collections.defaultdict(list)
for row in csv.DictReader(open(sys.argv[1], encoding="latin-1")):
    lists[row["user_id"]].append(row["item"])
bad = [u for u, l in lists.items() if len(set(l)) != len(l) or len(l) != 100]
if len(lists) != 943 or bad:
    print(len(lists), "users;", len(bad), "bad lists")
    sys.exit(1)
PY

# an items file of 50 of the 1682 films: a warning with the count
mkdir -p "$tmp/g50"
python3 - "$data" "$tmp/g50" <<'PY'
import csv, sys
data, out = sys.argv[1], sys.argv[2]
title = {}
for line in open(data + "/u.item", encoding="latin-1"):
    f = line.split("|")
    title[f[0]] = f[1]
with open(out + "/interactions.csv", "w", newline="", encoding="utf-8") as o:
    w = csv.writer(o)
    w.writerow(["user_id", "movie_title", "user_rating"])
    for line in open(data + "/u.data"):
        u, i, r, _ = line.split("\t")
        w.writerow([u, title[i], r])
with open(out + "/items.csv", "w", newline="", encoding="utf-8") as o:
    w = csv.writer(o)
    w.writerow(["movie_title"])
    for k in list(title)[:50]:
        w.writerow([title[k]])
PY
"$bin/mtrun" "$tmp/m.bin" --data "$tmp/g50" --quiet --set train.epochs=1 >"$tmp/g50.out" 2>"$tmp/g50.err"
grep -Eq "warning: [0-9]+ test rows name an item that is not among the candidates" "$tmp/g50.err" ||
  fail "the 50-item candidate list did not warn: $(cat "$tmp/g50.err")"
echo "e2e_honest: ok"
