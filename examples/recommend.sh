#!/usr/bin/env bash
# Serving a trained model, part 2: recommending movies.
#
#   examples/recommend.sh [TRAINED_MODEL]
#
# `mtrun MODEL recommend --user U -k K` scores every item (all 1682 movies of
# MovieLens 100K) against the user's query embedding and prints the K best:
# rank, score (a dot product), title. The model defaults to $OUT/joint.bin
# (OUT defaults to out/tutorial), which examples/tutorial.sh writes; when it is
# missing, this script trains it first (see examples/predict.sh). The last part
# exports the embeddings as .npy and repeats the recommendation in NumPy, to
# show how to serve them from another program (needs python3-numpy).
# Env: MTR_BIN (default build/bin).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${MTR_BIN:-$root/build/bin}"
out="${OUT:-out/tutorial}"
model="${1:-$out/joint.bin}"

# shellcheck source=examples/ensure-model.sh
. "$root/examples/ensure-model.sh"

echo "== the ten best movies for user 42"
echo "\$ mtrun recommend --user 42 -k 10"
"$bin/mtrun" "$model" recommend --user 42 -k 10
echo

echo "== three for user 1, naming the input column"
echo "\$ mtrun recommend --input user_id=1 -k 3"
"$bin/mtrun" "$model" recommend --input user_id=1 -k 3
echo

if python3 -c 'import numpy' 2>/dev/null; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "== the same top 3 for user 1 from the exported embeddings, in NumPy"
  "$bin/mtrun" "$model" export "$tmp"
  python3 - "$tmp" <<'PY'
import sys
import numpy as np

d = sys.argv[1]
users = open(f"{d}/vocab.user_id.txt", encoding="utf-8").read().splitlines()
titles = open(f"{d}/vocab.movie_title.txt", encoding="utf-8").read().splitlines()
items = open(f"{d}/items.txt", encoding="utf-8").read().splitlines()
user_emb = np.load(f"{d}/user.embedding.npy")    # (users + 1, 32), row 0 = OOV
movie_emb = np.load(f"{d}/movie.embedding.npy")  # (titles + 1, 32)
row = {t: i + 1 for i, t in enumerate(titles)}
cand = movie_emb[[row.get(t, 0) for t in items]]  # one row per item
scores = cand @ user_emb[users.index("1") + 1]
for rank, i in enumerate(np.argsort(-scores, kind="stable")[:3], 1):
    print(f"{rank}\t{scores[i]:.4f}\t{items[i]}")
PY
else
  echo "(python3-numpy is not installed: skipping the NumPy part)"
fi
