#!/usr/bin/env bash
# End-to-end against an independent reference: a NumPy implementation of the
# tutorial's joint model (written here from the model's definition, not from
# mtr's code) trained from the same initial weights on the same rows in the
# same order must give the same loss at every step and the same parameters
# afterwards. This checks the semantics, not just self-consistency: embedding
# lookups with row 0 for unknown values, the concat -> relu -> linear head,
# MSE as the batch mean, the in-batch softmax cross-entropy summed over the
# batch, both loss weights, Keras Adagrad (accumulator 0.1, epsilon 1e-7), and
# batches of consecutive rows with a partial last one.
# How: train with 0 epochs and export the initial parameters; train again from
# them (--init) with --order file and --step-log; export; run the reference.
# Needs python3 with NumPy (scripts/install-deps installs python3-numpy);
# exit 77 (skipped) when none is found.
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (folder with mtrc, mtrun).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

py=""
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null && "$candidate" -c "import numpy" 2>/dev/null; then
    py="$candidate"
    break
  fi
done
if [ -z "$py" ]; then
  echo "e2e_reference: skipped: no python3 with NumPy"
  exit 77
fi

# Data: 30 users, 24 items; users rate items near their own index. Train and
# test files in file order; one test user is unknown (the out-of-vocabulary row).
"$py" - "$tmp" <<'PY'
import os, random, sys
out, r = sys.argv[1], random.Random(11)
os.makedirs(os.path.join(out, "data"))
rows = []
for u in range(30):
    for i in r.sample(range(24), 6):
        rows.append("user_%02d,item_%02d,%d\n" % (u, i, 1 + (u + i) % 5))
r.shuffle(rows)
head = "user_id,movie_title,user_rating\n"
with open(os.path.join(out, "data", "interactions.csv"), "w") as f:
    f.write(head); f.writelines(rows)
with open(os.path.join(out, "data", "items.csv"), "w") as f:
    f.write("movie_title\n"); f.writelines("item_%02d\n" % i for i in range(24))
with open(os.path.join(out, "train.csv"), "w") as f:
    f.write(head); f.writelines(rows[:150])
with open(os.path.join(out, "test.csv"), "w") as f:
    f.write(head); f.writelines(rows[150:] + ["ghost,item_03,4\n"])
PY

cat >"$tmp/model.mtr" <<'MTR'
model reference
input user_id     : string
input movie_title : string
label user_rating : float
tower user  = user_id     -> lookup -> embedding(4)
tower movie = movie_title -> lookup -> embedding(4)
head rating = concat(user, movie) -> dense(8, relu) -> dense(1)
task rating    = ranking(rating, user_rating) loss mse metrics rmse weight 0.7
task retrieval = retrieval(user, movie) metrics top_k(1, 5) weight 0.3
train {
  optimizer adagrad(lr = 0.1)
  batch 16
  epochs 2
  seed 5
}
MTR

run=("$bin/mtrun" "$tmp/model.bin" --data "$tmp/data" --train "$tmp/train.csv" --test "$tmp/test.csv"
  --threads 1 --quiet)
"$bin/mtrc" "$tmp/model.mtr" -o "$tmp/model.bin"
"${run[@]}" --set train.epochs=0 -o "$tmp/init.bin" >/dev/null 2>&1
"$bin/mtrun" "$tmp/init.bin" export "$tmp/init"
"${run[@]}" --init "$tmp/init" --order file --step-log "$tmp/steps.jsonl" -o "$tmp/trained.bin" \
  >/dev/null 2>&1
"$bin/mtrun" "$tmp/trained.bin" export "$tmp/trained"

"$py" - "$tmp" <<'PY'
import json, os, sys
import numpy as np

tmp = sys.argv[1]
load = lambda d, n: np.load(os.path.join(tmp, d, n + ".npy")).astype(np.float64)
names = ["user.embedding", "movie.embedding", "rating.dense1.kernel", "rating.dense1.bias",
         "rating.dense2.kernel", "rating.dense2.bias"]
p = {n: load("init", n) for n in names}
acc = {n: np.full_like(p[n], 0.1) for n in names}          # Keras Adagrad's start
lr, eps, w_rating, w_retrieval, batch, epochs = 0.1, 1e-7, 0.7, 0.3, 16, 2

def vocab(col):
    words = open(os.path.join(tmp, "init", "vocab.%s.txt" % col), encoding="utf-8").read().split("\n")
    return {w: i + 1 for i, w in enumerate(w for w in words if w)}   # row 0: unknown

vu, vm = vocab("user_id"), vocab("movie_title")
rows = [l.rstrip("\n").split(",") for l in open(os.path.join(tmp, "train.csv"))][1:]
uid = np.array([vu.get(r[0], 0) for r in rows]); mid = np.array([vm.get(r[1], 0) for r in rows])
y = np.array([float(r[2]) for r in rows])

steps = [json.loads(l) for l in open(os.path.join(tmp, "steps.jsonl"))]
bad, k = [], 0
for epoch in range(epochs):
    for b0 in range(0, len(rows), batch):
        iu, im, yb = uid[b0:b0 + batch], mid[b0:b0 + batch], y[b0:b0 + batch]
        n = len(iu)
        u, m = p["user.embedding"][iu], p["movie.embedding"][im]
        x = np.concatenate([u, m], axis=1)
        z1 = x @ p["rating.dense1.kernel"] + p["rating.dense1.bias"]
        h1 = np.maximum(z1, 0)
        pred = (h1 @ p["rating.dense2.kernel"] + p["rating.dense2.bias"])[:, 0]
        rating_loss = np.mean((pred - yb) ** 2)
        s = u @ m.T
        smax = s.max(axis=1, keepdims=True)
        lse = smax[:, 0] + np.log(np.exp(s - smax).sum(axis=1))
        retrieval_loss = np.sum(lse - np.diag(s))
        loss = w_rating * rating_loss + w_retrieval * retrieval_loss
        got = steps[k]
        for what, want in (("loss", loss), ("rating.loss", rating_loss),
                           ("retrieval.loss", retrieval_loss)):
            if abs(got[what] - want) > 1e-4 * max(1.0, abs(want)):
                bad.append("step %d %s: mtr %.7g, reference %.7g" % (k + 1, what, got[what], want))
        if got["batch"] != n:
            bad.append("step %d: batch %d, reference %d" % (k + 1, got["batch"], n))
        # backward, by hand
        dpred = w_rating * 2 * (pred - yb)[:, None] / n
        g = {"rating.dense2.kernel": h1.T @ dpred, "rating.dense2.bias": dpred.sum(axis=0)}
        dz1 = (dpred @ p["rating.dense2.kernel"].T) * (z1 > 0)
        g["rating.dense1.kernel"] = x.T @ dz1
        g["rating.dense1.bias"] = dz1.sum(axis=0)
        dx = dz1 @ p["rating.dense1.kernel"].T
        prob = np.exp(s - lse[:, None])
        ds = w_retrieval * (prob - np.eye(n))
        du = dx[:, :4] + ds @ m
        dm = dx[:, 4:] + ds.T @ u
        g["user.embedding"] = np.zeros_like(p["user.embedding"])
        np.add.at(g["user.embedding"], iu, du)
        g["movie.embedding"] = np.zeros_like(p["movie.embedding"])
        np.add.at(g["movie.embedding"], im, dm)
        for name in names:  # every gradient before any update
            if "grad_norm." + name in got:
                want = np.sqrt((g[name] ** 2).sum())
                if abs(got["grad_norm." + name] - want) > 1e-4 * max(1.0, want):
                    bad.append("step %d grad_norm.%s: mtr %.7g, reference %.7g"
                               % (k + 1, name, got["grad_norm." + name], want))
        for name in names:
            acc[name] += g[name] ** 2
            p[name] -= lr * g[name] / (np.sqrt(acc[name]) + eps)
        k += 1
if k != len(steps):
    bad.append("mtr ran %d steps, the reference %d" % (len(steps), k))
for name in names:
    diff = np.abs(load("trained", name) - p[name]).max()
    if diff > 1e-4:
        bad.append("%s after training: max |mtr - reference| = %.3g" % (name, diff))
if bad:
    print("e2e_reference: FAIL:\n  " + "\n  ".join(bad[:20]), file=sys.stderr)
    sys.exit(1)
print("e2e_reference: ok (%d steps, %d parameters; final loss %.6g)" % (k, len(names), loss))
PY
