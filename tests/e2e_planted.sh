#!/usr/bin/env bash
# End-to-end: a trained model finds a planted structure.
#
# tests/gen_planted.sh writes 60 users and 90 items in 9 groups, where users
# interact only with items of their own group and rate with a per-user
# generosity. We compile the small model it writes, train the joint model
# (both tasks, weight 1) at a fixed seed and check, from the --metrics JSON
# lines:
#   - top_10 >= 0.6 (chance is 10/90 = 0.11; a working model scores ~1.0,
#     one whose retrieval gradient is broken or absent scores ~0.1);
#   - RMSE <= 0.8 x the ratings' standard deviation (a working model scores
#     ~0.55 x; predicting the mean scores 1.0 x; an untrained head ~4.5 x);
#   - the training loss of the last epoch is below that of the first.
# Runs in well under a second (also under the sanitizers).
# Env: MTR_SOURCE_DIR (the source tree), MTR_BIN_DIR (folder with mtrc, mtrun).
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "e2e_planted: FAIL: $*" >&2
  exit 1
}

"$src/tests/gen_planted.sh" "$tmp" 7
"$bin/mtrc" "$tmp/planted.mtr" -o "$tmp/model.bin"
"$bin/mtrun" "$tmp/model.bin" --data "$tmp/data" --threads 1 --quiet \
  --set rating.weight=1 --set retrieval.weight=1 \
  --metrics "$tmp/metrics.jsonl" -o "$tmp/trained.bin" >"$tmp/stdout"
cat "$tmp/stdout"

# The value of numeric field $2 in JSON line $1 (our lines are flat objects).
field() {
  printf '%s\n' "$1" | sed -n "s/.*\"$2\":\([-0-9.eE+]*\).*/\1/p"
}

test_line="$(grep '"phase":"test"' "$tmp/metrics.jsonl")" || fail "no test line in the metrics"
first_loss="$(field "$(grep '"phase":"train"' "$tmp/metrics.jsonl" | head -n 1)" loss)"
last_loss="$(field "$(grep '"phase":"train"' "$tmp/metrics.jsonl" | tail -n 1)" loss)"
top10="$(field "$test_line" top_10)"
rmse="$(field "$test_line" rmse)"
std="$(awk -F, 'NR > 1 { s += $3; q += $3 * $3; n++ }
                END { m = s / n; printf "%.6f", sqrt(q / n - m * m) }' "$tmp/data/interactions.csv")"
[ -n "$top10" ] && [ -n "$rmse" ] && [ -n "$first_loss" ] && [ -n "$last_loss" ] ||
  fail "could not read top_10, rmse and the losses from the metrics"
echo "top_10 $top10 (chance 0.111), rmse $rmse (rating std $std), loss $first_loss -> $last_loss"

awk -v v="$top10" 'BEGIN { exit !(v >= 0.6) }' ||
  fail "top_10 = $top10, expected >= 0.6 (chance is 0.11): retrieval did not learn the groups"
awk -v v="$rmse" -v s="$std" 'BEGIN { exit !(v <= 0.8 * s) }' ||
  fail "rmse = $rmse, expected <= 0.8 x the ratings' standard deviation $std"
awk -v a="$first_loss" -v b="$last_loss" 'BEGIN { exit !(b < a) }' ||
  fail "training loss did not go down: epoch 1 $first_loss, last epoch $last_loss"
# Serving a file of rows gives what serving each row alone gives.
{
  echo "user_id,movie_title"
  sed -n '2,4p' "$tmp/data/interactions.csv" | cut -d, -f1,2
} >"$tmp/rows.csv"
"$bin/mtrun" "$tmp/trained.bin" predict --file "$tmp/rows.csv" -o "$tmp/pred.csv" ||
  fail "predict --file failed"
[ "$(wc -l <"$tmp/pred.csv")" -eq 4 ] || fail "predict --file wrote $(wc -l <"$tmp/pred.csv") lines, expected 4"
for r in 2 3 4; do
  u="$(sed -n "${r}p" "$tmp/rows.csv" | cut -d, -f1)"
  i="$(sed -n "${r}p" "$tmp/rows.csv" | cut -d, -f2)"
  one="$("$bin/mtrun" "$tmp/trained.bin" predict --user "$u" --item "$i" | cut -f2)"
  many="$(sed -n "${r}p" "$tmp/pred.csv" | cut -d, -f3)"
  [ "$one" = "$many" ] || fail "row $r: predict --file says $many, predict --user/--item $one"
done
printf 'user_id\n%s\n%s\n' "$u" "$(sed -n 30p "$tmp/data/interactions.csv" | cut -d, -f1)" >"$tmp/users.csv"
"$bin/mtrun" "$tmp/trained.bin" recommend --file "$tmp/users.csv" -k 5 >"$tmp/recs.csv" ||
  fail "recommend --file failed"
[ "$(wc -l <"$tmp/recs.csv")" -eq 11 ] || fail "recommend --file -k 5 for 2 users: $(wc -l <"$tmp/recs.csv") lines"
first="$("$bin/mtrun" "$tmp/trained.bin" recommend --user "$u" -k 1 | cut -f3)"
[ "$(sed -n 2p "$tmp/recs.csv" | cut -d, -f3)" = "$first" ] ||
  fail "recommend --file's first item for $u is not recommend --user's ($first)"

# A model with no retrieval task reads no items: it trains on the
# interactions alone (no items file) and predicts from the saved file.
mkdir -p "$tmp/noitems"
cp "$tmp/data/interactions.csv" "$tmp/noitems/"
"$bin/mtrc" "$src/models/rating_only.mtr" -o "$tmp/rating_only.bin"
"$bin/mtrun" "$tmp/rating_only.bin" --data "$tmp/noitems" --threads 1 --quiet \
  --set train.batch=64 --set train.epochs=5 -o "$tmp/rating_only.trained" >/dev/null ||
  fail "the rating-only model did not train without an items file"
user="$(sed -n 2p "$tmp/data/interactions.csv" | cut -d, -f1)"
item="$(sed -n 2p "$tmp/data/interactions.csv" | cut -d, -f2)"
pred="$("$bin/mtrun" "$tmp/rating_only.trained" predict --user "$user" --item "$item")" ||
  fail "the rating-only model does not predict for --user $user --item $item"
printf '%s\n' "$pred" | grep -qE '^rating	[0-9.]+$' || fail "rating-only predict printed '$pred'"
# A click-like task: a 0/1 label (rating >= 4) learned with binary
# cross-entropy on logits and Adam; AUC well above chance (0.5), and predict
# gives a probability.
mkdir -p "$tmp/click"
awk -F, 'NR == 1 { print "user_id,movie_title,liked"; next } { print $1 "," $2 "," ($3 >= 4) }' \
  "$tmp/data/interactions.csv" >"$tmp/click/interactions.csv"
cat >"$tmp/click.mtr" <<'MTR'
model click
input user_id     : string
input movie_title : string
label liked       : float
tower user  = user_id     -> lookup -> embedding(8)
tower movie = movie_title -> lookup -> embedding(8)
head like = concat(user, movie) -> dense(16, relu) -> dense(1)
task like = ranking(like, liked) loss bce metrics auc
train {
  optimizer adam(lr = 0.01)
  batch 64
  epochs 15
}
MTR
"$bin/mtrc" "$tmp/click.mtr" -o "$tmp/click.bin"
"$bin/mtrun" "$tmp/click.bin" --data "$tmp/click" --threads 1 --quiet --metrics "$tmp/click.jsonl" \
  -o "$tmp/click.trained" >/dev/null || fail "the click model did not train"
auc="$(field "$(grep '"phase":"test"' "$tmp/click.jsonl")" auc)"
echo "click model: auc $auc"
awk -v v="$auc" 'BEGIN { exit !(v >= 0.8) }' || fail "click auc = $auc, expected >= 0.8 (chance 0.5)"
prob="$("$bin/mtrun" "$tmp/click.trained" predict --user "$user" --item "$item" | cut -f2)"
awk -v p="$prob" 'BEGIN { exit !(p > 0 && p < 1) }' || fail "click predict gave '$prob', not a probability"
# The same with the lazy Adam (adam(..., lazy = 1)): embeddings updated row-wise,
# dense layers as before; it learns as well.
sed 's/optimizer adam(\(.*\))/optimizer adam(\1, lazy = 1)/' "$tmp/click.mtr" >"$tmp/click_lazy.mtr"
grep -q 'lazy = 1' "$tmp/click_lazy.mtr" || fail "could not write the lazy-Adam click model"
"$bin/mtrc" "$tmp/click_lazy.mtr" -o "$tmp/click_lazy.bin"
"$bin/mtrc" --dump graph "$tmp/click_lazy.mtr" | grep -q 'adam_update_rows(user.embedding' ||
  fail "adam(lazy = 1) did not give the user embedding a row-wise Adam update"
"$bin/mtrc" --dump graph "$tmp/click.mtr" | grep -q 'adam_update_rows' &&
  fail "Keras's dense Adam (no lazy) got a row-wise update"
"$bin/mtrun" "$tmp/click_lazy.bin" set optimizer.lazy=0 2>/dev/null &&
  fail "mtrun set changed optimizer.lazy, which only mtrc may set"
"$bin/mtrun" "$tmp/click_lazy.bin" --data "$tmp/click" --threads 1 --quiet \
  --metrics "$tmp/click_lazy.jsonl" >/dev/null || fail "the lazy-Adam click model did not train"
auc="$(field "$(grep '"phase":"test"' "$tmp/click_lazy.jsonl")" auc)"
echo "click model, lazy Adam: auc $auc"
awk -v v="$auc" 'BEGIN { exit !(v >= 0.8) }' || fail "lazy-Adam click auc = $auc, expected >= 0.8"
echo "e2e_planted: ok"
