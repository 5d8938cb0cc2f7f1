#!/usr/bin/env bash
# End-to-end: features beyond ids (docs/dsl.md "Features", docs/data.md).
#   (a) models/movielens_features.mtr compiles with no note and keeps the
#       distinct-id in-batch softmax; models/movielens_time_query.mtr compiles
#       with a note naming timestamp and the blocked form in --dump graph;
#   (b) on a small MovieLens 100K folder (u.data, u.item, u.user made here) the
#       features model trains, saves, predicts for a known user, recommends for
#       a cold-start user given by features, and names a per-row feature that
#       nobody gave; the same seed gives the same bytes;
#   (c) a 1M-format folder (users.dat with occupation codes), a latest-format
#       folder (movies.csv genres) and a generic CSV with users.csv (or
#       --users FILE, --items FILE) train a
#       model reading their side columns;
#   (d) mistakes: a list without pooling, tokens over a float, normalize over
#       a string: mtrc says so.
# Env: MTR_SOURCE_DIR, MTR_BIN_DIR.
set -euo pipefail

src="${MTR_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${MTR_BIN_DIR:-$src/build/bin}"
mtrc="$bin/mtrc"
mtrun="$bin/mtrun"
tmp="$(mktemp -d)"
trap "rm -rf \"$tmp\"" EXIT
failures=0
checks=0
fail() {
  echo "e2e_features: FAIL: $*" >&2
  failures=$((failures + 1))
}
has() { # has FILE TEXT WHAT
  checks=$((checks + 1))
  grep -qF -- "$2" "$1" || fail "$3: no '$2' in: $(head -c 400 "$1")"
}
hasnt() { # hasnt FILE TEXT WHAT
  checks=$((checks + 1))
  ! grep -qF -- "$2" "$1" || fail "$3: '$2' in: $(head -c 400 "$1")"
}
export MTR_THREADS=1

# ---- (a) compiling
"$mtrc" "$src/models/movielens_features.mtr" -o "$tmp/f.bin" 2>"$tmp/f.err" || fail "features model does not compile"
checks=$((checks + 1))
[ ! -s "$tmp/f.err" ] || fail "features model: mtrc printed: $(cat "$tmp/f.err")"
"$mtrc" --dump graph "$src/models/movielens_features.mtr" >"$tmp/f.graph" 2>/dev/null
has "$tmp/f.graph" "inbatch_softmax_xent_ids(" "features model: distinct-id softmax"
"$mtrc" "$src/models/movielens_time_query.mtr" -o "$tmp/t.bin" 2>"$tmp/t.err" || fail "time query model does not compile"
has "$tmp/t.err" "note:" "time query model: a note"
has "$tmp/t.err" "'timestamp'" "time query model: the note names timestamp"
"$mtrc" --dump graph "$src/models/movielens_time_query.mtr" >"$tmp/t.graph" 2>/dev/null
has "$tmp/t.graph" "inbatch_softmax_xent_qc(" "time query model: blocked form"

# ---- (b) a small 100K folder: 40 users, 30 movies, 600 ratings
d="$tmp/ml100k"
mkdir -p "$d"
python3 - "$d" <<'PY'
import random, sys
d = sys.argv[1]
r = random.Random(7)
genres = 19
with open(d + "/u.item", "w", encoding="latin-1") as f:
    for i in range(1, 31):
        flags = ["1" if r.random() < 0.2 else "0" for _ in range(genres)]
        f.write("%d|Movie %s Part %d (19%02d)||x|y|%s\n" % (i, "Alpha" if i % 2 else "Beta", i, 50 + i, "|".join(flags)))
occ = ["writer", "student", "engineer", "artist"]
with open(d + "/u.user", "w") as f:
    for u in range(1, 41):
        f.write("%d|%d|%s|%s|%05d\n" % (u, 15 + u, "MF"[u % 2], occ[u % 4], u))
with open(d + "/u.data", "w") as f:
    for k in range(600):
        u, i = r.randint(1, 40), r.randint(1, 30)
        f.write("%d\t%d\t%d\t%d\n" % (u, i, r.randint(1, 5), 880000000 + k * 1000))
PY
set_small="--set train.batch=128 --set train.epochs=2 --set optimizer.lr=0.1"
if "$mtrun" "$tmp/f.bin" --data "$d" $set_small --quiet -o "$tmp/ft.bin" --metrics "$tmp/m1.json" >"$tmp/train.out" 2>&1; then
  has "$tmp/train.out" "top_100" "train: retrieval metrics"
  has "$tmp/train.out" "auc" "train: liked auc"
  "$mtrun" "$tmp/f.bin" --data "$d" $set_small --quiet --metrics "$tmp/m2.json" >/dev/null 2>&1
  checks=$((checks + 1))
  cmp -s "$tmp/m1.json" "$tmp/m2.json" || fail "two runs with one seed differ"
  "$mtrun" "$tmp/ft.bin" info >"$tmp/info.out"
  has "$tmp/info.out" "list.movie_genres.lookup" "info: the list length symbol"
  "$mtrun" "$tmp/ft.bin" predict --user 3 --item "Movie Alpha Part 1 (1951)" \
    --input user_gender=M --input user_occupation_text=writer --input raw_user_age=30 \
    --input "movie_genres=Action|Drama" --input timestamp=880000500 >"$tmp/pred.out" 2>&1 ||
    fail "predict: $(cat "$tmp/pred.out")"
  has "$tmp/pred.out" "rating" "predict: a rating"
  if "$mtrun" "$tmp/ft.bin" predict --user 3 --item "Movie Alpha Part 1 (1951)" \
    --input user_gender=M --input user_occupation_text=writer --input raw_user_age=30 \
    --input "movie_genres=Action" >"$tmp/nots.out" 2>&1; then
    fail "predict without timestamp succeeded"
  fi
  has "$tmp/nots.out" "timestamp" "predict: the missing per-row feature is named"
  "$mtrun" "$tmp/ft.bin" recommend --user newcomer -k 3 --input user_gender=F \
    --input user_occupation_text=artist --input raw_user_age=22 >"$tmp/cold.out" 2>&1 ||
    fail "cold start: $(cat "$tmp/cold.out")"
  has "$tmp/cold.out" "Movie" "cold start: items recommended"
  # a known user's and an item's features come from model.bin
  "$mtrun" "$tmp/ft.bin" predict --user 3 --item "Movie Alpha Part 1 (1951)" \
    --input timestamp=880000500 >"$tmp/known.out" 2>&1 || fail "predict, known user: $(cat "$tmp/known.out")"
  has "$tmp/known.out" "rating" "predict, known user: a rating"
  "$mtrun" "$tmp/ft.bin" recommend --user 3 -k 3 >"$tmp/krec.out" 2>&1 ||
    fail "recommend, known user: $(cat "$tmp/krec.out")"
  has "$tmp/krec.out" "Movie" "recommend, known user: items"
  # user 3 is F, an artist, 18 (u.user above): the same as given by --input
  "$mtrun" "$tmp/ft.bin" recommend --user 3 -k 3 --input user_gender=F \
    --input user_occupation_text=artist --input raw_user_age=18 >"$tmp/krec2.out" 2>&1
  checks=$((checks + 1))
  cmp -s "$tmp/krec.out" "$tmp/krec2.out" || fail "stored features differ from the same ones given"
  "$mtrun" "$tmp/ft.bin" recommend --user 3 -k 3 --input user_gender=M \
    --input user_occupation_text=writer --input raw_user_age=60 >"$tmp/krec3.out" 2>&1
  checks=$((checks + 1))
  ! cmp -s "$tmp/krec.out" "$tmp/krec3.out" || fail "--input does not override stored features"
  if "$mtrun" "$tmp/ft.bin" recommend --user newcomer -k 3 --input user_gender=F >"$tmp/cold2.out" 2>&1; then
    fail "cold start without its features succeeded"
  fi
  has "$tmp/cold2.out" "user_occupation_text" "cold start: the missing feature is named"
  if "$mtrun" "$tmp/ft.bin" predict --user 3 --item "Movie Alpha Part 1 (1951)" >"$tmp/nots2.out" 2>&1; then
    fail "predict without timestamp succeeded (known user)"
  fi
  has "$tmp/nots2.out" "a value for 'timestamp' is needed" "predict: the per-row feature is named"
  printf 'user_id,movie_title,timestamp,user_gender\n3,Movie Alpha Part 1 (1951),880000500,\nnewcomer,Movie Beta Part 2 (1952),880000500,F\n' >"$tmp/rows.csv"
  "$mtrun" "$tmp/ft.bin" predict --file "$tmp/rows.csv" >"$tmp/pf.out" 2>&1 || fail "predict --file: $(cat "$tmp/pf.out")"
  has "$tmp/pf.out" "user_gender,user_occupation_text,raw_user_age" "predict --file: the feature columns"
  has "$tmp/pf.out" "3,F,artist,18,Movie Alpha Part 1 (1951),"  "predict --file: a known user's features filled"
  has "$tmp/pf.out" "newcomer,F,,," "predict --file: a cold start's given feature"
  printf 'user_id,user_gender,user_occupation_text,raw_user_age\nnewcomer,F,artist,22\n3,,,\n' >"$tmp/q.csv"
  "$mtrun" "$tmp/ft.bin" recommend --file "$tmp/q.csv" -k 3 >"$tmp/rf.out" 2>&1 || fail "recommend --file: $(cat "$tmp/rf.out")"
  has "$tmp/rf.out" "newcomer,F,artist,22,1," "recommend --file: cold start"
  has "$tmp/rf.out" "3,F,artist,18,1," "recommend --file: empty cells filled"
  printf 'user_id,movie_title\n3,Movie Alpha Part 1 (1951)\n' >"$tmp/nots.csv"
  if "$mtrun" "$tmp/ft.bin" predict --file "$tmp/nots.csv" >"$tmp/pf2.out" 2>&1; then
    fail "predict --file without timestamp succeeded"
  fi
  has "$tmp/pf2.out" "'timestamp'" "predict --file: the per-row feature is named"
else
  fail "features model does not train: $(tail -3 "$tmp/train.out")"
fi

# ---- (b2) a retrieval key looked up with min_count: its rare ids share the
# out-of-vocabulary id while their side features differ, so rows are never
# grouped by it; the compiled loss is the plain (-O0) one
cat >"$tmp/mc.mtr" <<'EOF'
model mc
input user_id      : string
input movie_title  : string
input user_gender  : string
label user_rating  : float
tower user  = concat(user_id -> lookup(min_count = 20) -> embedding(8), user_gender -> lookup -> embedding(2)) -> dense(8)
tower movie = movie_title -> lookup -> embedding(8) -> dense(8)
task retrieval = retrieval(user, movie) metrics top_k(5)
train { batch 64 epochs 2 }
EOF
"$mtrc" "$tmp/mc.mtr" -o "$tmp/mc.bin" 2>"$tmp/mc.err" || fail "min_count model: $(cat "$tmp/mc.err")"
has "$tmp/mc.err" "lookup(min_count = 20)" "min_count key: the note says why"
"$mtrc" --dump graph "$tmp/mc.mtr" >"$tmp/mc.graph" 2>/dev/null
has "$tmp/mc.graph" "inbatch_softmax_xent_qc(" "min_count key: blocked form"
hasnt "$tmp/mc.graph" "inbatch_softmax_xent_ids(" "min_count key: not grouped by ids"
"$mtrc" -O0 "$tmp/mc.mtr" -o "$tmp/mc0.bin" 2>/dev/null
"$mtrun" "$tmp/mc.bin" --data "$d" --quiet --metrics "$tmp/mc.jsonl" >/dev/null 2>&1 || fail "min_count model does not train"
"$mtrun" "$tmp/mc0.bin" --data "$d" --quiet --metrics "$tmp/mc0.jsonl" >/dev/null 2>&1 || fail "min_count model (-O0) does not train"
checks=$((checks + 1))
python3 - "$tmp/mc.jsonl" "$tmp/mc0.jsonl" <<'PY' || fail "min_count key: the loss differs from the plain form's"
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(p) if '"train"' in l] for p in sys.argv[1:3])
assert len(a) == len(b) == 2, (a, b)
assert all(abs(x - y) <= 1e-4 * max(1.0, abs(y)) for x, y in zip(a, b)), (a, b)
PY

# ---- (c) other formats
cat >"$tmp/side.mtr" <<'EOF'
model side
input user_id      : string
input movie_title  : string
input user_gender  : string
input movie_genres : string list
label user_rating  : float
tower user  = concat(user_id -> lookup -> embedding(8), user_gender -> hash(4) -> embedding(2)) -> dense(8)
tower movie = concat(movie_title -> lookup -> embedding(8), movie_genres -> lookup(min_count = 1) -> embedding(4, sum)) -> dense(8)
head rating = concat(user, movie) -> dense(1)
task rating    = ranking(rating, user_rating) loss mse metrics rmse
task retrieval = retrieval(user, movie) metrics top_k(1, 5)
train { batch 4 epochs 1 }
EOF
"$mtrc" "$tmp/side.mtr" -o "$tmp/side.bin" 2>"$tmp/side.err" || fail "side model: $(cat "$tmp/side.err")"
checks=$((checks + 1))
[ ! -s "$tmp/side.err" ] || fail "side model: mtrc printed: $(cat "$tmp/side.err")"
m1="$tmp/ml1m"
mkdir -p "$m1"
printf '1::Toy Story (1995)::Animation|Comedy\n2::Heat (1995)::Action|Crime\n3::Sabrina (1995)::Comedy\n' >"$m1/movies.dat"
printf '1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n' >"$m1/users.dat"
for k in $(seq 1 24); do printf '%d::%d::%d::%d\n' $((k % 3 + 1)) $((k % 3 + 1)) $((k % 5 + 1)) $((978300000 + k)); done >"$m1/ratings.dat"
"$mtrun" "$tmp/side.bin" --data "$m1" --quiet >"$tmp/m1.out" 2>&1 || fail "1M folder: $(cat "$tmp/m1.out")"
has "$tmp/m1.out" "rmse" "1M folder trains"
lt="$tmp/latest"
mkdir -p "$lt"
printf 'movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n2,"Heat, The (1995)",Action\n3,Sabrina (1995),(no genres listed)\n' >"$lt/movies.csv"
{ echo "userId,movieId,rating,timestamp"; for k in $(seq 1 24); do echo "$((k % 4 + 1)),$((k % 3 + 1)),$((k % 5 + 1)).0,$((964980000 + k))"; done; } >"$lt/ratings.csv"
cat >"$tmp/latest.mtr" <<'EOF'
model latest
input user_id      : string
input movie_title  : string
input movie_genres : string list
label user_rating  : float
tower user  = user_id -> lookup -> embedding(8)
tower movie = concat(movie_title -> tokens -> hash(50) -> embedding(4, mean), movie_genres -> lookup -> embedding(4, mean)) -> dense(8)
head rating = concat(user, movie) -> dense(1)
task rating = ranking(rating, user_rating) loss mse metrics rmse
train { batch 4 epochs 1 }
EOF
"$mtrc" "$tmp/latest.mtr" -o "$tmp/latest.bin" || fail "latest model does not compile"
"$mtrun" "$tmp/latest.bin" --data "$lt" --quiet >"$tmp/lt.out" 2>&1 || fail "latest folder: $(cat "$tmp/lt.out")"
has "$tmp/lt.out" "rmse" "latest folder trains"
g="$tmp/generic"
mkdir -p "$g"
{ echo "user_id,movie_title,user_rating,when"; for k in $(seq 1 30); do echo "u$((k % 5)),m$((k % 4)),$((k % 5 + 1)),$((k * 10))"; done; } >"$g/interactions.csv"
printf 'user_id,age,user_gender\nu0,20,F\nu1,31,M\nu2,44,F\nu3,25,M\n' >"$g/users.csv"
cat >"$tmp/generic.mtr" <<'EOF'
model generic
input user_id     : string
input movie_title : string
input age         : float
input user_gender : string
input when        : float
label user_rating : float
tower user  = concat(user_id -> lookup -> embedding(8), age -> normalize, user_gender -> lookup -> embedding(2), when -> bucketize(50, 150, 250) -> embedding(2)) -> dense(8)
tower movie = movie_title -> lookup -> embedding(8)
head rating = concat(user, movie) -> dense(1)
task rating = ranking(rating, user_rating) loss mse metrics rmse
train { batch 4 epochs 1 }
EOF
"$mtrc" "$tmp/generic.mtr" -o "$tmp/generic.bin" || fail "generic model does not compile"
"$mtrun" "$tmp/generic.bin" --data "$g" --quiet >"$tmp/g.out" 2>&1 || fail "generic folder: $(cat "$tmp/g.out")"
has "$tmp/g.out" "rmse" "generic folder trains"
has "$tmp/g.out" "side table lacks" "generic folder: the user missing from users.csv is reported"

# --users FILE / --items FILE: side tables from elsewhere, as TSV
g2="$tmp/generic2"
mkdir -p "$g2"
cp "$g/interactions.csv" "$g2/"
printf 'user_id\tage\tuser_gender\nu0\t20\tF\nu1\t31\tM\nu2\t44\tF\nu3\t25\tM\nu4\t52\tF\n' >"$tmp/people.tsv"
printf 'movie_title\nm0\nm1\nm2\nm3\nm9\n' >"$tmp/films.csv"
"$mtrun" "$tmp/generic.bin" --data "$g2" --users "$tmp/people.tsv" --items "$tmp/films.csv" --quiet \
  -o "$tmp/g2.bin" >"$tmp/g2.out" 2>&1 || fail "--users/--items: $(cat "$tmp/g2.out")"
has "$tmp/g2.out" "rmse" "--users/--items: trains"
hasnt "$tmp/g2.out" "side table lacks" "--users: every user found"
"$mtrun" "$tmp/g2.bin" predict --user u4 --item m1 --input when=100 >"$tmp/g2p.out" 2>&1 ||
  fail "--users: predict for a known user: $(cat "$tmp/g2p.out")"
has "$tmp/g2p.out" "rating" "--users: predict with the stored age and gender"
if "$mtrun" "$tmp/generic.bin" --data "$g2" --quiet >"$tmp/g3.out" 2>&1; then
  fail "without --users, the folder has no age column, and yet it trained"
fi
if "$mtrun" "$tmp/generic.bin" --data "$d" --users "$tmp/people.tsv" --quiet >"$tmp/g4.out" 2>&1; then
  fail "--users with a MovieLens folder was accepted"
fi
has "$tmp/g4.out" "--users and --items" "--users with MovieLens: said why"

# ---- (d) mistakes
bad() { # bad WHAT TEXT EXPECTED
  printf '%s\n' "$2" >"$tmp/bad.mtr"
  checks=$((checks + 1))
  if "$mtrc" "$tmp/bad.mtr" -o "$tmp/bad.bin" >"$tmp/bad.err" 2>&1; then
    fail "$1: compiled"
  else
    grep -qF -- "$3" "$tmp/bad.err" || fail "$1: no '$3' in: $(cat "$tmp/bad.err")"
  fi
}
head='model m
input u : string
input g : string list
input x : float
label r : float'
tail='head h = t -> dense(1)
task r = ranking(h, r)'
bad "list without pooling" "$head
tower t = g -> lookup -> embedding(4)
$tail" "pool them, embedding(4, mean) or embedding(4, sum)"
bad "tokens over a float" "$head
tower t = x -> tokens -> lookup -> embedding(4, mean)
$tail" "tokens needs a string input"
bad "normalize over a string" "$head
tower t = u -> normalize
$tail" "normalize needs a float input"
bad "pooling one id" "$head
tower t = u -> lookup -> embedding(4, mean)
$tail" "there is nothing to pool"

echo "e2e_features: $checks checks, $failures failures"
[ "$failures" -eq 0 ]
